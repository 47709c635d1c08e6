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

/** One worker thread, started on first use (or by warm()), restarted if it dies. */
interface PendingJob {
  readonly text: string;
  readonly resolve: (digest: string) => void;
  readonly reject: (error: Error) => void;
}

/** One worker thread, started on first use (or by warm()), restarted if it dies. */
export class DigestWorker {
  #worker: Worker | undefined;
  #next = 0;
  readonly #pending = new Map<number, PendingJob>();

  /** Starts the thread ahead of the first large review. */
  warm(): void {
    this.#ensure();
  }

  /** Resolves to the digest, or rejects when the subject cannot be canonicalised (e.g. a lone surrogate). */
  readonly digest: OffThreadDigester = (text) =>
    new Promise<string>((resolve, reject) => {
      const id = this.#next++;
      this.#pending.set(id, { text, resolve, reject });
      this.#ensure().postMessage({ id, text } satisfies Job);
    });

  #ensure(): Worker {
    if (this.#worker) return this.#worker;
    const file = import.meta.url.endsWith('.ts') ? './digest-worker.ts' : './digest-worker.js';
    const worker = new Worker(new URL(file, import.meta.url));
    worker.unref();
    worker.on('message', (message: { id: number; digest?: string; error?: string }) => {
      const job = this.#pending.get(message.id);
      if (!job) return;
      this.#pending.delete(message.id);
      if (message.digest !== undefined) job.resolve(message.digest);
      else job.reject(new Error(message.error ?? 'the change subject cannot be canonicalized'));
    });
    const fail = () => {
      if (this.#worker === worker) this.#worker = undefined;
      // The thread is gone: finish its jobs here, so no verdict is lost to a worker problem.
      for (const [id, job] of this.#pending) {
        this.#pending.delete(id);
        try {
          job.resolve(canonicalDigest(JSON.parse(job.text)));
        } catch (error) {
          job.reject(error instanceof Error ? error : new Error(String(error)));
        }
      }
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }
}
