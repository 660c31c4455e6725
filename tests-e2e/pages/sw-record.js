// Shared by the test workers (classic through importScripts, module through import): each
// sync event as { online, outcome } in `self.syncs` (whether the worker saw itself online
// when it fired, how its promise settled), and the outcomes alone, in the order they
// settled, in `self.syncOutcomes`. Loaded before the package, so it sees each promise.
self.syncs = [];
self.syncOutcomes = [];
self.addEventListener('sync', (event) => {
  const seen = { online: navigator.onLine };
  self.syncs.push(seen);
  const waitUntil = event.waitUntil.bind(event);
  event.waitUntil = (p) => {
    p.then(() => self.syncOutcomes.push(seen.outcome = 'resolved'), () => self.syncOutcomes.push(seen.outcome = 'rejected'));
    return waitUntil(p);
  };
});
