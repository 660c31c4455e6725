// What the page-side benchmarks share: the 1 KiB text, a handler that never answers,
// timing and the median.
export const KIB = 'x'.repeat(1000);

export const never = () => new Promise(() => {});

export async function time(fn) {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export function median(xs) {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
