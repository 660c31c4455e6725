import type { InitInput, Outbox, OutboxOptions } from './offline_outbox.js';

export interface OutboxSyncOptions extends Omit<OutboxOptions, 'handlers'> {
  /** Handlers available in the worker, of the same kinds as a page's; the built-in 'http'
   *  needs none. */
  handlers?: OutboxOptions['handlers'];
  /** Time a `sync` event may spend draining (browsers allow a few minutes). Default 25000. */
  budgetMs?: number;
  /** Where the .wasm is (needed by the classic bundle). Given as a URL (or by default),
   *  the module is fetched on install and kept in Cache Storage, so that the worker opens
   *  its outbox when started offline. */
  wasm?: InitInput;
}

/** Drains the outbox on Background Sync (tag `offline-outbox:<name>`), or on worker start,
 *  `online` and page requests where the Sync API is missing. Returns the worker's outbox,
 *  opened as the worker starts; where that open failed, or the outbox's database has since
 *  been deleted, each `then` (or `await`) opens it again. */
export function installOutboxSync(options: OutboxSyncOptions): Promise<Outbox>;
export { default as init, Outbox } from './offline_outbox.js';
