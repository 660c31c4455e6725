// The object `stats()` answers with, from the figures the engine counted: named here, in
// one call, rather than one call into JS per field.
import { estimate } from './storage.js';

const orNull = (x) => (Number.isNaN(x) ? null : x);

/**
 * `n` (a Float64Array, NaN for null): pending, inFlight, retrying, dead, held,
 * oldestCreatedAt, oldestAgeMs, bytes, successRate, the latency p50, p90 and p99,
 * nextAttemptAt, sent, retried, deadLettered, isLeader (1 or 0). The storage figures are
 * read here.
 */
export async function statsObject(n, persisted) {
  const [usage, quota] = (await estimate()) ?? [null, null];
  const [pending, inFlight, retrying, dead, held, oldestCreatedAt, oldestAgeMs, bytes,
    successRate, p50, p90, p99, nextAttemptAt, sent, retried, deadLettered, leader] = Array.from(n, orNull);
  return {
    pending, inFlight, retrying, dead, held, oldestCreatedAt, oldestAgeMs, bytes, successRate,
    attemptLatencyMs: { p50, p90, p99 },
    storage: { persisted: persisted ?? null, usage: usage ?? null, quota: quota ?? null },
    nextAttemptAt, sent, retried, deadLettered, isLeader: leader === 1,
  };
}
