/**
 * The serving certificate, read from files and swapped in place when they change (cert-manager
 * and the chart rotate it by updating a Secret), without dropping connections.
 */
import { readFile } from 'node:fs/promises';
import { createSecureContext, type Server as TlsServer } from 'node:tls';
import { type FilePoller, pollFiles } from '../config/watch.ts';
import { TwokeyError } from '../errors.ts';

export interface TlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
}

export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
}

export async function readTlsFiles(files: TlsFiles): Promise<TlsMaterial> {
  const [cert, key] = await Promise.all([readFile(files.certPath, 'utf8'), readFile(files.keyPath, 'utf8')]).catch((error: Error) => {
    throw new TwokeyError('ERR_USAGE', `cannot read the TLS certificate or key: ${error.message}`, { cause: error });
  });
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new TwokeyError('ERR_USAGE', `the TLS certificate and key do not form a usable pair: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return { cert, key };
}

export interface TlsReloadObserver {
  reloaded(): void;
  failed(error: unknown): void;
}

/** Watches the files and installs a new certificate once cert and key match again. */
export async function watchTlsFiles(
  server: TlsServer,
  files: TlsFiles,
  intervalMs: number,
  observer: TlsReloadObserver,
): Promise<FilePoller> {
  const poller = pollFiles(intervalMs, async () => {
    try {
      const material = await readTlsFiles(files);
      server.setSecureContext(material);
      observer.reloaded();
    } catch (error) {
      // A half-written pair (new cert, old key) fails here; the next change completes it.
      observer.failed(error);
    }
  });
  await poller.watch([files.certPath, files.keyPath]);
  return poller;
}
