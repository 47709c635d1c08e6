/**
 * Polls files for content changes. Kubernetes updates mounted ConfigMaps and Secrets by swapping a
 * symlink, which inotify-style watches miss; a stat and a content hash every few seconds do not.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export async function fileFingerprint(path: string): Promise<string | undefined> {
  try {
    return createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  } catch {
    return undefined;
  }
}

export interface FilePoller {
  /** Sets the files to watch, keeping the fingerprints of those already watched. */
  watch(paths: Iterable<string>): Promise<void>;
  stop(): void;
}

export function pollFiles(intervalMs: number, onChange: (path: string) => Promise<void> | void): FilePoller {
  const fingerprints = new Map<string, string | undefined>();
  let running = false;
  const timer = setInterval(async () => {
    if (running) return;
    running = true;
    try {
      for (const [path, before] of fingerprints) {
        const now = await fileFingerprint(path);
        if (now === before || now === undefined) continue;
        fingerprints.set(path, now);
        await onChange(path);
      }
    } finally {
      running = false;
    }
  }, intervalMs);
  timer.unref();
  return {
    async watch(paths) {
      const wanted = new Set(paths);
      for (const path of [...fingerprints.keys()]) if (!wanted.has(path)) fingerprints.delete(path);
      for (const path of wanted) if (!fingerprints.has(path)) fingerprints.set(path, await fileFingerprint(path));
    },
    stop() {
      clearInterval(timer);
    },
  };
}
