/* Hand-written types for offline-outbox (they replace wasm-bindgen's generated ones). */

export type InitInput =
  | RequestInfo
  | URL
  | Response
  | BufferSource
  | WebAssembly.Module;

/** Loads the WebAssembly module. Call once before `Outbox.open`. */
export default function init(
  input?: InitInput | Promise<InitInput> | { module_or_path: InitInput | Promise<InitInput> },
): Promise<unknown>;

export function initSync(module: BufferSource | WebAssembly.Module | { module: BufferSource | WebAssembly.Module }): unknown;

export type Priority = 'high' | 'normal' | 'low';
export type Status = 'pending' | 'in-flight' | 'dead';
export type DeadReason = 'handler-rejected' | 'max-attempts' | 'corrupt' | 'expired';

export type ErrorCode =
  | 'InvalidTransaction'
  | 'InvalidOptions'
  | 'UnknownHandler'
  | 'NotSerializable'
  | 'QuotaExceeded'
  | 'StorageUnavailable'
  | 'Closed'
  | 'Dead'
  | 'NotFound'
  | 'InFlight'
  | 'Removed'
  | 'NotLeader'
  | 'InvalidBackup';

export interface HandlerContext<M = unknown, D = unknown> {
  id: string;
  /** The same on every attempt, from every context. */
  idempotencyKey: string;
  keys: string[];
  mutations: M;
  metadata: D;
  /** 1 on the first attempt. */
  attempt: number;
  /** Aborted when the outbox closes, this context stops leading, or the attempt runs past
   *  `attemptTimeoutMs` (the reason then a `TimeoutError` DOMException). */
  signal: AbortSignal;
}

/** Resolve to acknowledge. Throw `NonRetriableError` to dead-letter; anything else retries
 *  (an error with a numeric `retryAfterMs` sets the next delay). */
export type Handler<M = any, D = any> = (ctx: HandlerContext<M, D>) => Promise<unknown> | unknown;

/** One entry of a batch handler's result: `undefined`, `null` or `true` acknowledges; an
 *  error means what throwing it from a single handler would (`NonRetriableError`
 *  dead-letters, others retry, `retryAfterMs` honoured). */
export type BatchOutcome = undefined | null | true | Error;

/** Receives up to `batchSize` runnable transactions (never two sharing a key) in one call.
 *  Resolve to acknowledge all, throw to fail all alike, or resolve an array with one
 *  outcome per transaction (a missing entry is retried). */
export interface BatchHandler<M = any, D = any> {
  sendBatch(batch: HandlerContext<M, D>[]): Promise<void | BatchOutcome[]> | void | BatchOutcome[];
  /** Default 50. A batch takes one `maxConcurrency` slot. */
  batchSize?: number;
  merge?: (older: M, newer: M) => M;
  /** This handler's calls' time limit, in place of the outbox's `attemptTimeoutMs`. */
  attemptTimeoutMs?: number;
}

/** A single-transaction handler with a merge function for coalescing. */
export interface HandlerSpec<M = any, D = any> {
  send: Handler<M, D>;
  /** Folds a newer coalesced transaction's mutations into the pending one's. Without it,
   *  the newer mutations replace the older. If it throws (or returns what cannot be
   *  stored), the two run on their own, in order, and an `error` event with the newer id
   *  and code `InvalidTransaction` says why. */
  merge?: (older: M, newer: M) => M;
  /** This handler's attempts' time limit (1 to 2^31 - 1 ms), in place of the outbox's
   *  `attemptTimeoutMs`: shorter for quick writes, longer for uploads. */
  attemptTimeoutMs?: number;
}

export interface RetryOptions {
  /** Default 1000. */
  baseDelayMs?: number;
  /** Default 60000. */
  maxDelayMs?: number;
  /** Default unlimited. Past it the transaction goes to the dead letters. */
  maxAttempts?: number;
  /** Default 'full'. */
  jitter?: 'full' | 'equal' | 'none';
}

export interface OutboxOptions {
  /** Namespaces the database (`offline-outbox:<name>`), lock and channel. */
  name: string;
  handlers: Record<string, Handler | HandlerSpec | BatchHandler>;
  /** Default 4. */
  maxConcurrency?: number;
  /** Default 'per-key'. */
  ordering?: 'per-key' | 'fifo';
  retry?: RetryOptions;
  /** Who sends when several contexts (tabs, workers) open the same outbox. Default 'auto':
   *  Web Locks where available, else a heartbeat lease over BroadcastChannel. 'none': this
   *  context always sends (only for apps that open the outbox in one context). */
  leaderElection?: 'auto' | 'web-locks' | 'broadcast-channel' | 'none';
  /** Transactions older than this (since enqueue) go to the dead letters, reason 'expired'. */
  maxAgeMs?: number;
  /** An attempt (handler call, batch call or http request) with no outcome after this many
   *  ms (1 to 2^31 - 1) fails as a retryable `TimeoutError`: its `signal` aborts, its keys
   *  and concurrency slot are free for the retry, and a late outcome is ignored. Default:
   *  no limit. A handler's own `attemptTimeoutMs` takes its place for that handler. */
  attemptTimeoutMs?: number;
  /** What later transactions on a dead transaction's keys do: 'skip' (default) runs them;
   *  'block' holds them until the dead one is retried or discarded. */
  deadLetterPolicy?: 'skip' | 'block';
  /** 'wifi-preferred' holds low-priority work while the connection is metered (cellular,
   *  Data Saver, or an effective type of 3g or slower, from the Network Information API
   *  where the browser has it) until the oldest held transaction is `maxHoldMs` old
   *  (default 24 h), the outbox's payloads exceed `maxHoldBytes` (default 1 MiB), or
   *  `drain()` is called. Default 'always'. */
  network?: { policy?: 'always' | 'wifi-preferred'; maxHoldMs?: number; maxHoldBytes?: number };
  /** Ask for persistent storage (`navigator.storage.persist()`) at open. Default true. */
  persist?: boolean;
  /** Soft limits: `capacity` events at 80 % ('warning') and 100 % ('full'); work is never refused. */
  capacity?: { maxCount?: number; maxBytes?: number };
  /** Deflate payloads whose JSON form exceeds 1 KiB, where that makes them smaller (the
   *  package's own raw deflate, synchronous). Handlers see the original values. Default false. */
  compress?: boolean;
  /** Encrypt payloads at rest with AES-GCM under a non-extractable key kept in this
   *  outbox's database. Handlers see plaintext. Default false. */
  encrypt?: boolean;
}

/** The built-in `http` handler's mutations, checked at `enqueue`: a request `fetch` would
 *  refuse (method not a token or CONNECT, TRACE or TRACK; URL that does not parse or is
 *  not http or https; headers `Headers` rejects; a body on GET or HEAD) rejects with
 *  `InvalidTransaction`. */
export interface HttpMutation {
  method: string;
  url: string;
  headers?: Record<string, string>;
  /** A Blob (a File too) is stored as it is and sent as its bytes, its `type` the
   *  Content-Type unless `headers` set one. */
  body?: string | ArrayBuffer | ArrayBufferView | Blob | null;
}

export interface NewTransaction {
  /** A registered handler's name, or the built-in 'http'. */
  handler: string;
  /** Transactions sharing a key run in enqueue order; an empty list waits for all earlier
   *  transactions and holds back all later ones. */
  keys: string[];
  /** Anything structured-clone can store: Date, Map, Set, ArrayBuffer, typed arrays... */
  mutations: unknown;
  priority?: Priority;
  /** Defaults to the transaction id. */
  idempotencyKey?: string;
  metadata?: unknown;
  /** Folds this transaction into the latest pending one with the same coalesceKey, handler
   *  and keys that is not in flight: that one keeps its place and takes these mutations
   *  (or the handler's `merge`), metadata and idempotency key; this one settles with it.
   *  One that did not fold because the older one was in flight (or dead) folds into it when
   *  a leader next loads the outbox (reload, new leader, import), if that one is pending
   *  again by then. */
  coalesceKey?: string;
}

export interface TransactionError {
  /** The thrown error's name ('Error' for a thrown value that is not an error). */
  name: string;
  /** Its message (a thrown object as JSON, any other value as text), at most its first
   *  1,000 characters: it is stored with the transaction. */
  message: string;
}

export interface TransactionInfo {
  id: string;
  handler: string;
  keys: string[];
  mutations: unknown;
  metadata: unknown;
  idempotencyKey: string;
  seq: number;
  priority: Priority;
  status: Status;
  attempts: number;
  createdAt: number;
  nextAttemptAt: number;
  lastError?: TransactionError;
  /** Only on dead letters. */
  deadReason?: DeadReason;
  /** As enqueued: later enqueues with the same one (and handler and keys) fold into this
   *  transaction while it is pending and not in flight. */
  coalesceKey?: string;
}

/** What `settled` resolves with. For a transaction this context sent (as leader; one of
 *  its last 1,000 acknowledged) it is its info with status 'acknowledged', `mutations` and
 *  `metadata` undefined (they are not kept); otherwise (acknowledged by another context or
 *  before this one opened: acknowledged transactions leave no record) only `id` and
 *  `status` are set. */
export type SettledInfo =
  | (Omit<TransactionInfo, 'status'> & { status: 'acknowledged' })
  | { id: string; status: 'acknowledged' };

export interface OutboxStats {
  /** Waiting (not in flight, not dead). */
  pending: number;
  /** Pending after at least one failed attempt. */
  retrying: number;
  /** Low-priority transactions held back by the `wifi-preferred` network policy. */
  held: number;
  inFlight: number;
  dead: number;
  oldestCreatedAt: number | null;
  oldestAgeMs: number | null;
  /** Approximate stored size of the waiting transactions' mutations and metadata. */
  bytes: number;
  /** Acknowledged attempts over finished attempts since this context opened (null: none). */
  successRate: number | null;
  /** Over the last 1024 attempts this context ran (null: none yet). */
  attemptLatencyMs: { p50: number | null; p90: number | null; p99: number | null };
  /** From `navigator.storage` where present (null otherwise); usage and quota are the origin's. */
  storage: { persisted: boolean | null; usage: number | null; quota: number | null };
  /** When the earliest waiting transaction becomes due, if any. */
  nextAttemptAt: number | null;
  /** Counters since this context opened the outbox. */
  sent: number;
  retried: number;
  deadLettered: number;
  isLeader: boolean;
}

export interface DrainReport {
  sent: number;
  retried: number;
  dead: number;
  /** Transactions still in the outbox (waiting for a retry time, or blocked). */
  remaining: number;
  /** false when the budget ran out (or the outbox closed) first. */
  complete: boolean;
  durationMs: number;
}

/** A value as `export()` writes it: plain JSON passes through; anything else IndexedDB
 *  stores (Date, Map, Set, binary data, Blob, bigint, undefined, NaN, shared references)
 *  is an object tagged `$t`. `import()` turns it back into the same value. */
export type EncodedValue = null | boolean | number | string | EncodedValue[] | { [key: string]: EncodedValue };

export interface BackupTransaction {
  id: string;
  /** Its seq where it was exported: orders pending and dead records on import. */
  seq?: number;
  handler: string;
  keys: string[];
  idempotencyKey: string;
  priority: Priority;
  attempts: number;
  createdAt: number;
  nextAttemptAt: number;
  lastError?: TransactionError;
  deadReason?: DeadReason;
  deadAt?: number;
  /** The stored size of its payload where it was exported; `import()` counts it afresh. */
  bytes?: number;
  coalesceKey?: string;
  /** Ids of transactions coalesced into this one. */
  aliases?: string[];
  mutations: EncodedValue;
  metadata: EncodedValue;
}

/** What `export()` produces and `import()` reads; `JSON.stringify` it as it is. */
export interface OutboxBackup {
  format: 'offline-outbox-backup';
  version: 1;
  name: string;
  exportedAt: number;
  pending: BackupTransaction[];
  dead: BackupTransaction[];
}

/** `peek()`'s and `deadLetters()`'s options. */
export interface ListOptions {
  /** At most this many, from the head of the list. */
  limit?: number;
}

export interface ImportReport {
  pending: number;
  dead: number;
  /** Already here (pending, dead or coalesced), so not added again. */
  skipped: number;
}

export type OutboxEvent =
  | { type: 'enqueued'; id: string; seq: number }
  | { type: 'sending'; id: string; attempt: number }
  | { type: 'sent'; id: string }
  /** After each transaction settles (sent or dead) while work runs; `total` counts what is
   *  settled in this run plus what is still waiting. */
  | { type: 'progress'; done: number; total: number }
  /** `id` was folded into the pending transaction `into` (same coalesceKey); it settles with it. */
  | { type: 'coalesced'; id: string; into: string }
  /** Crossing 80 % ('warning') or 100 % ('full') of `capacity`, on the way up. */
  | { type: 'capacity'; level: 'warning' | 'full'; count: number; bytes: number; ratio: number }
  /** The database went away under the outbox: 'deleted' (site data cleared, or evicted),
   *  'closed' (by the browser), 'upgraded' (a newer version of this package opened it).
   *  `pending` is what this context knew was waiting. The outbox then refuses every call
   *  with StorageUnavailable; open it again. */
  | { type: 'storage-lost'; reason: 'deleted' | 'closed' | 'upgraded'; pending: number }
  | { type: 'retry'; id: string; attempt: number; nextAttemptAt: number; error: TransactionError }
  | { type: 'dead'; id: string; reason: DeadReason; error: TransactionError }
  | { type: 'removed'; id: string }
  | { type: 'leader'; isLeader: boolean }
  | { type: 'drained'; remaining: number }
  | { type: 'error'; id?: string; error: OutboxError };

export class Outbox {
  private constructor();
  static open(options: OutboxOptions): Promise<Outbox>;
  readonly name: string;
  /** This context currently sends. Known when `open` resolves with Web Locks; with the
   *  BroadcastChannel lease it settles within a claim window (watch the `leader` event). */
  readonly isLeader: boolean;
  /** Resolves once the transaction is durable in IndexedDB. */
  enqueue(tx: NewTransaction): Promise<TransactionInfo>;
  /** Resolves when a handler acknowledged it (at once if it already was); rejects with
   *  `OutboxError{code:'Dead'}` if it is or becomes dead, `'Removed'` if removed or
   *  discarded from the dead letters (remembered for 30 days, across reopens). An id the
   *  outbox holds nothing about resolves as acknowledged: acknowledged transactions leave
   *  no record. Calls that must ask the store (a follower's, say) and are made before its
   *  read starts share one read: `Promise.all(ids.map((id) => outbox.settled(id)))` makes
   *  one. */
  settled(id: string): Promise<SettledInfo>;
  /** Not yet acknowledged, not dead, in seq order. With `limit`, the first `limit` of
   *  them, and only those are read from storage (in any context), so a view of a long
   *  queue's head costs what it shows. A `limit` that is not a non-negative number rejects with `InvalidOptions`;
   *  a fraction is truncated. */
  peek(opts?: ListOptions): Promise<TransactionInfo[]>;
  /** The dead letters, in seq order (the first `limit` of them, as for `peek`); a context
   *  that has just taken over answers once it has read the outbox (undecodable records it
   *  meets there become dead letters). */
  deadLetters(opts?: ListOptions): Promise<TransactionInfo[]>;
  /** Back into the outbox at its original position in key order, attempts reset. */
  retryDead(id: string): Promise<void>;
  discardDead(id: string): Promise<void>;
  /** Cancels a pending transaction, with every id folded into it (coalescing; a fold under
   *  way into it finishes first); `InFlight` if it is being sent, `NotFound` if unknown.
   *  An earlier attempt cut off by `close()` or a change of leader may have reached the
   *  server: that one cannot be taken back. */
  remove(id: string): Promise<void>;
  stats(): Promise<OutboxStats>;
  /** The pending transactions (in-flight ones included) and the dead letters. */
  export(): Promise<OutboxBackup>;
  /** Adds a backup's transactions not already here after everything pending, keeping
   *  ids, idempotency keys and attempts, in one write. The whole document is checked
   *  first: `InvalidBackup` (or `UnknownHandler`) and nothing stored if any record is bad.
   *  Resolves once stored (and, on the leader, taken in: `peek()` right after shows them). */
  import(backup: OutboxBackup | string): Promise<ImportReport>;
  /** Resets backoff delays and drains now. */
  notifyOnline(): void;
  /** Runs until nothing is runnable now, or until `budgetMs` passes. */
  drain(opts?: { budgetMs?: number }): Promise<DrainReport>;
  subscribe(listener: (e: OutboxEvent) => void): () => void;
  /** Stops sending, finishes every write under way, closes the database. */
  close(): Promise<void>;
  free(): void;
  [Symbol.dispose](): void;
}

export class NonRetriableError extends Error {
  constructor(message?: string, options?: ErrorOptions);
}

export class OutboxError extends Error {
  constructor(code: ErrorCode, message?: string, options?: ErrorOptions);
  readonly code: ErrorCode;
}
