/**
 * Renders the chart with the real helm binary, for the chart tests and for `npm run manifests`.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { isJsonObject, type JsonObject } from '../../src/json.ts';
import { ensureTools, HELM } from './tools.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART = join(ROOT, 'charts', 'twokey');
export const MANIFESTS = join(ROOT, 'manifests', 'twokey.yaml');

/**
 * Plain manifests cannot carry a generated CA and key (everyone applying them would share one
 * private key), so they are the chart's defaults with the certificate from cert-manager.
 */
export const MANIFEST_ARGS = ['template', 'twokey', CHART, '--namespace', 'twokey', '--skip-tests', '--set', 'tls.mode=certManager'];

export function helm(args: readonly string[]): string {
  ensureTools();
  return execFileSync(HELM, [...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function render(options: { valuesFile?: string; set?: readonly string[]; namespace?: string; release?: string } = {}): JsonObject[] {
  const args = ['template', options.release ?? 'twokey', CHART, '--namespace', options.namespace ?? 'twokey', '--include-crds'];
  if (options.valuesFile) args.push('--values', options.valuesFile);
  for (const value of options.set ?? []) args.push('--set', value);
  return parseObjects(helm(args));
}

export function parseObjects(text: string): JsonObject[] {
  return parseAllDocuments(text)
    .map((document) => document.toJS() as unknown)
    .filter(isJsonObject);
}

export function renderManifests(): string {
  const header =
    '# Rendered from charts/twokey by `npm run manifests` (helm template with the chart defaults and\n# tls.mode=certManager). Apply with `kubectl apply -f manifests/`; cert-manager must be installed.\n';
  return header + helm(MANIFEST_ARGS);
}
