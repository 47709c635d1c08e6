/**
 * Canonicalises and hashes large change subjects on a worker thread. Canonicalising a 1.5 MB
 * spec takes tens of milliseconds; on the event loop that would stall every review in flight.
 * The worker receives the subject as JSON text (cheap to produce and to send) and answers its
 * digest; if it fails, the caller computes the digest itself, so the value never depends on it.
 */
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import { canonicalDigest, type OffThreadDigester } from './digest.ts';

interface Job {
  readonly id: number;
  readonly text: string;
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  port.on('message', ({ id, text }: Job) => {
    try {
      port.postMessage({ id, digest: canonicalDigest(JSON.parse(text)) });
    } catch (error) {
      port.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
    }
  });
}

/** A subject waiting for its digest. */
interface PendingJob {
  readonly text: string;
  readonly resolve: (digest: string) => void;
  readonly reject: (error: Error) => void;
}

/** A running thread and the jobs it owes answers for. */
interface Thread {
  readonly worker: Worker;
  readonly pending: Map<number, PendingJob>;
  idleTimer?: NodeJS.Timeout;
}

/**
 * The thread's heap, within the server's memory limit: canonicalising the largest real spec (3 MiB
 * of JSON) takes about 30 MB, and without a bound V8 lets a thread's garbage grow to hundreds.
 */
const WORKER_HEAP = { maxOldGenerationSizeMb: 64, maxYoungGenerationSizeMb: 8 } as const;

/** How long an idle thread is kept: a thread holds about 15 MB, and large specs are rare. */
export const DEFAULT_IDLE_MS = 60_000;

/**
 * One worker thread, started on first use and stopped once idle for `idleMs`, so a server that
 * never sees a large spec never pays for it. A thread that dies leaves its jobs to be finished
 * on the calling thread.
 */
export class DigestWorker {
  #thread: Thread | undefined;
  #next = 0;
  readonly #idleMs: number;

  constructor(options: { idleMs?: number } = {}) {
    this.#idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  }

  /** Whether a thread is running now. */
  get running(): boolean {
    return this.#thread !== undefined;
  }

  /** Resolves to the digest, or rejects when the subject cannot be canonicalised (e.g. a lone surrogate). */
  readonly digest: OffThreadDigester = (text) =>
    new Promise<string>((resolve, reject) => {
      const thread = this.#ensure();
      clearTimeout(thread.idleTimer);
      const id = this.#next++;
      thread.pending.set(id, { text, resolve, reject });
      thread.worker.postMessage({ id, text } satisfies Job);
    });

  #ensure(): Thread {
    if (this.#thread) return this.#thread;
    const file = import.meta.url.endsWith('.ts') ? './digest-worker.ts' : './digest-worker.js';
    const thread: Thread = { worker: new Worker(new URL(file, import.meta.url), { resourceLimits: WORKER_HEAP }), pending: new Map() };
    thread.worker.unref();
    thread.worker.on('message', (message: { id: number; digest?: string; error?: string }) => {
      const job = thread.pending.get(message.id);
      if (!job) return;
      thread.pending.delete(message.id);
      if (message.digest !== undefined) job.resolve(message.digest);
      else job.reject(new Error(message.error ?? 'the change subject cannot be canonicalized'));
      if (thread.pending.size === 0 && this.#thread === thread) {
        thread.idleTimer = setTimeout(() => void this.#stop(thread), this.#idleMs);
        thread.idleTimer.unref();
      }
    });
    let outOfMemory = false;
    const fail = (error?: Error & { code?: string }) => {
      clearTimeout(thread.idleTimer);
      if (this.#thread === thread) this.#thread = undefined;
      outOfMemory ||= error?.code === 'ERR_WORKER_OUT_OF_MEMORY';
      // The thread is gone: finish its jobs here, so no verdict is lost to a worker problem. A spec
      // that took the thread past its heap would take the server past its memory limit as well.
      for (const [id, job] of thread.pending) {
        thread.pending.delete(id);
        if (outOfMemory) {
          job.reject(new Error(`canonicalising it takes more than the ${WORKER_HEAP.maxOldGenerationSizeMb} MB the server gives one spec`));
          continue;
        }
        try {
          job.resolve(canonicalDigest(JSON.parse(job.text)));
        } catch (error) {
          job.reject(error instanceof Error ? error : new Error(String(error)));
        }
      }
    };
    thread.worker.on('error', fail);
    thread.worker.on('exit', () => fail());
    this.#thread = thread;
    return thread;
  }

  async #stop(thread: Thread): Promise<void> {
    clearTimeout(thread.idleTimer);
    if (this.#thread === thread) this.#thread = undefined;
    await thread.worker.terminate();
  }

  async close(): Promise<void> {
    if (this.#thread) await this.#stop(this.#thread);
  }
}
