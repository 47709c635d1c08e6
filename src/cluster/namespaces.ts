/**
 * The labels of every namespace and whether its deletion has begun, kept current by a watch.
 * `/validate` asks it whether a workload's namespace is critical, and whether the namespace
 * controller is emptying it; until the first list has arrived it knows nothing, and a namespace
 * it has not seen is "unknown", which the decision treats fail-closed.
 */
import { CoreV1Api, type KubeConfig, ListWatch, type V1Namespace, Watch } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { NamespaceDeletion, NamespaceState, NamespaceView } from '../decision/gate.ts';
import { describeError } from '../errors.ts';
import { hasCriticalLabel } from '../kubernetes/objects.ts';
import type { ReadinessCheck } from '../server/app.ts';
import type { TwokeyMetrics } from '../server/metrics.ts';

export interface NamespaceCacheOptions {
  readonly logger: Logger;
  readonly metrics?: TwokeyMetrics;
  /** First and longest wait before restarting a failed watch. */
  readonly backoffMs?: { readonly initial: number; readonly max: number };
}

type WatchCallback = Parameters<Watch['watch']>[2];

/**
 * A Watch that reports a failure to open (a credential plugin or CA file that fails) through
 * `done`, like every later failure, instead of rejecting a promise the informer's reconnect does
 * not await (an unhandled rejection ends the process); and that says when a stream is open.
 */
class ReportingWatch extends Watch {
  readonly #opened: () => void;
  readonly #active: () => boolean;

  constructor(kc: KubeConfig, hooks: { opened: () => void; active: () => boolean }) {
    super(kc);
    this.#opened = hooks.opened;
    this.#active = hooks.active;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: WatchCallback,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    // Stopped while a list was in flight: the informer would still open a watch.
    if (!this.#active()) return new AbortController();
    let ended = false;
    const endOnce = (err: unknown) => {
      if (ended) return;
      ended = true;
      done(err);
    };
    try {
      const controller = await super.watch(path, queryParams, callback, endOnce);
      // Stopped while the watch was opening: the informer has already aborted what it knew of.
      if (!this.#active()) {
        ended = true;
        controller.abort();
      } else if (!ended) this.#opened();
      return controller;
    } catch (error) {
      endOnce(error);
      return new AbortController();
    }
  }
}

/** What the cache keeps of a namespace. */
interface Known {
  readonly labels: Readonly<Record<string, string>>;
  /** metadata.deletionTimestamp is set. */
  readonly deleting: boolean;
}

export class NamespaceCache implements NamespaceView, ReadinessCheck {
  readonly #namespaces = new Map<string, Known>();
  readonly #informer: ListWatch<V1Namespace>;
  readonly #options: NamespaceCacheOptions;
  #synced = false;
  #stopped = false;
  #backoff: number;
  #restart: NodeJS.Timeout | undefined;

  constructor(kc: KubeConfig, options: NamespaceCacheOptions) {
    this.#options = options;
    this.#backoff = options.backoffMs?.initial ?? 1000;
    const core = kc.makeApiClient(CoreV1Api);
    // An open stream ends the backoff: a later failure is retried promptly again.
    const watch = new ReportingWatch(kc, {
      opened: () => {
        this.#backoff = options.backoffMs?.initial ?? 1000;
      },
      active: () => !this.#stopped,
    });
    this.#informer = new ListWatch<V1Namespace>(
      '/api/v1/namespaces',
      watch,
      async () => {
        const list = await core.listNamespace();
        // Replace the state with the full list: a relist after 410 Gone also drops what was deleted meanwhile.
        this.#namespaces.clear();
        for (const ns of list.items) this.#set(ns);
        if (!this.#synced) options.logger.info({ namespaces: this.#namespaces.size }, 'namespace cache synced');
        this.#synced = true;
        this.#backoff = options.backoffMs?.initial ?? 1000;
        options.metrics?.namespaceWatch.inc({ event: 'synced' });
        return list;
      },
      false,
    );
    this.#informer.on('add', (ns) => this.#set(ns));
    this.#informer.on('update', (ns) => this.#set(ns));
    this.#informer.on('delete', (ns) => {
      if (ns.metadata?.name) this.#namespaces.delete(ns.metadata.name);
      this.#options.metrics?.namespaces.set(this.#namespaces.size);
    });
    this.#informer.on('error', (error) => this.#failed(error));
  }

  #set(ns: V1Namespace): void {
    const name = ns.metadata?.name;
    if (!name) return;
    this.#namespaces.set(name, { labels: { ...(ns.metadata?.labels ?? {}) }, deleting: Boolean(ns.metadata?.deletionTimestamp) });
    this.#options.metrics?.namespaces.set(this.#namespaces.size);
  }

  /** The watch stopped with an error: keep serving the last state and try again with backoff. */
  #failed(error: unknown): void {
    if (this.#stopped) return;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.#backoff * 2, this.#options.backoffMs?.max ?? 30_000);
    this.#options.metrics?.namespaceWatch.inc({ event: 'error' });
    this.#options.logger.warn({ error: describeError(error), retryInMs: delay }, 'namespace watch failed; serving the last known labels');
    clearTimeout(this.#restart);
    this.#restart = setTimeout(() => {
      this.#options.metrics?.namespaceWatch.inc({ event: 'restart' });
      this.#informer.start().catch((e: unknown) => this.#failed(e));
    }, delay);
    this.#restart.unref();
  }

  async start(): Promise<void> {
    this.#stopped = false;
    await this.#informer.start().catch((error: unknown) => this.#failed(error));
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restart);
    await this.#informer.stop();
  }

  criticality(namespace: string): NamespaceState {
    const known = this.#known(namespace);
    if (known === undefined) return 'unknown';
    return hasCriticalLabel(known.labels) ? 'critical' : 'not-critical';
  }

  deletion(namespace: string): NamespaceDeletion {
    const known = this.#known(namespace);
    if (known === undefined) return 'unknown';
    return known.deleting ? 'deleting' : 'active';
  }

  #known(namespace: string): Known | undefined {
    return this.#synced ? this.#namespaces.get(namespace) : undefined;
  }

  notReady(): string[] {
    return this.#synced ? [] : ['the namespace cache has not synced with the Kubernetes API yet'];
  }
}
