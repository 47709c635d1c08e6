/**
 * What the control-plane tests use: the real kubectl, helm and `twokey` commands run as a person
 * types them (separate processes, exit codes, what they print), manifests in files, and namespaces
 * of their own so that test files never meet.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { ensureTools, HELM } from '../support/tools.ts';
import { type ApproveOptions, approveArgs, type Result, type RunOptions, runCommand, TWOKEY_BIN } from './commands.ts';
import { CLUSTER, ISSUER } from './twokey.ts';

export { approvalAnnotations, deployment, digestIn } from './commands.ts';

export const plane = inject('controlPlane');

/** The real kubectl, with the test kubeconfig (context admin unless `--context` is given). */
export function kubectl(args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return runCommand(plane.kubeconfig, plane.kubectl, args, options);
}

/** kubectl that must succeed; returns what it printed. */
export async function kubectlOk(args: readonly string[], options: RunOptions = {}): Promise<string> {
  const result = await kubectl(args, options);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

export async function getJson(args: readonly string[]): Promise<Record<string, unknown>> {
  return JSON.parse(await kubectlOk([...args, '-o', 'json'])) as Record<string, unknown>;
}

/** The real helm, with the test kubeconfig. */
export function helm(args: readonly string[], options: RunOptions & { context?: string } = {}): Promise<Result> {
  ensureTools();
  return runCommand(plane.kubeconfig, HELM, [...args, '--kube-context', options.context ?? 'admin'], options);
}

/** The `twokey` command as installed (bin/twokey.js, compiled), with the test kubeconfig. */
export function twokey(args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return runCommand(plane.kubeconfig, process.execPath, [TWOKEY_BIN, ...args], options);
}

let scratch: string | undefined;

/** Writes a manifest (objects or YAML text) to a file of its own; returns the path. */
export async function writeManifest(name: string, content: string | object | readonly object[]): Promise<string> {
  scratch ??= await mkdtemp(join(tmpdir(), 'twokey-e2e-'));
  const text =
    typeof content === 'string'
      ? content
      : (Array.isArray(content) ? content : [content]).map((object) => stringify(object, { lineWidth: 0 })).join('---\n');
  const path = join(scratch, `${name}-${randomBytes(3).toString('hex')}.yaml`);
  await writeFile(path, text);
  return path;
}

/** A name no other test uses. */
export function unique(prefix: string): string {
  return `${prefix}-${randomBytes(3).toString('hex')}`;
}

/** A namespace labelled critical (by default), made by the admin; returns its name. */
export async function namespace(prefix: string, options: { critical?: boolean; labels?: Record<string, string> } = {}): Promise<string> {
  const name = unique(prefix);
  await kubectlOk(['create', 'namespace', name]);
  const labels = { ...(options.critical === false ? {} : { 'twokey.dev/critical': 'true' }), ...options.labels };
  if (Object.keys(labels).length > 0) await kubectlOk(['label', 'namespace', name, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)]);
  return name;
}

/** One approval, minted by `twokey approve` with the change system's key from the install. */
export async function approve(options: ApproveOptions): Promise<string> {
  const result = await twokey(approveArgs(plane.twokey.issuerKey, ISSUER, CLUSTER, options));
  if (result.code !== 0) throw new Error(`twokey approve exited ${result.code}: ${result.stderr}`);
  return result.stdout.trim();
}

/** Polls `check` until it holds, at most `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

export interface DecisionLine {
  readonly uid: string;
  readonly user: string;
  readonly operation: string;
  readonly resource: string;
  readonly subResource?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly dryRun: boolean;
  readonly verdict: 'admitted' | 'refused';
  readonly action?: string;
  readonly digest?: string;
  readonly summary: string;
}

/** The server's decision log lines so far. */
export function decisions(): DecisionLine[] {
  return readFileSync(join(plane.stateDir, 'logs', 'twokey.log'), 'utf8')
    .split('\n')
    .filter((line) => line.includes('"msg":"admission decision"'))
    .map((line) => JSON.parse(line) as DecisionLine);
}
