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
export class DigestWorker {
  #worker: Worker | undefined;
  #next = 0;
  readonly #pending = new Map<number, { text: string; resolve: (digest: string) => void }>();

  /** Starts the thread ahead of the first large review. */
  warm(): void {
    this.#ensure();
  }

  readonly digest: OffThreadDigester = (text) =>
    new Promise<string>((resolve) => {
      const id = this.#next++;
      this.#pending.set(id, { text, resolve });
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
      job.resolve(message.digest ?? this.#fallback(job.text));
    });
    const fail = () => {
      this.#worker = undefined;
      for (const [id, job] of this.#pending) {
        this.#pending.delete(id);
        job.resolve(this.#fallback(job.text));
      }
    };
    worker.on('error', fail);
    worker.on('exit', fail);
    this.#worker = worker;
    return worker;
  }

  /** The same digest on this thread: never lose a verdict to a worker problem. */
  #fallback(text: string): string {
    return canonicalDigest(JSON.parse(text));
  }

  async close(): Promise<void> {
    const worker = this.#worker;
    this.#worker = undefined;
    await worker?.terminate();
  }
}
