/**
 * What the control-plane tests use: the real kubectl, helm and `twokey` commands run as a person
 * types them (separate processes, exit codes, what they print), manifests in files, and namespaces
 * of their own so that test files never meet.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { stringify } from 'yaml';
import { ensureTools, HELM } from '../support/tools.ts';
import { CLUSTER, ISSUER } from './twokey.ts';

export const plane = inject('controlPlane');
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BIN = join(ROOT, 'bin', 'twokey.js');

export interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly input?: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
}

export function runCommand(file: string, args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      {
        cwd: ROOT,
        env: { ...process.env, KUBECONFIG: plane.kubeconfig, ...options.env },
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        if (error && code === -1) reject(new Error(`${file} ${args.join(' ')}: ${error.message}\n${stderr}`));
        else resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end(options.input ?? '');
  });
}

/** The real kubectl, with the test kubeconfig (context admin unless `--context` is given). */
export function kubectl(args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return runCommand(plane.kubectl, args, options);
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
  return runCommand(HELM, [...args, '--kube-context', options.context ?? 'admin'], options);
}

/** The `twokey` command as installed (bin/twokey.js, compiled), with the test kubeconfig. */
export function twokey(args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return runCommand(process.execPath, [BIN, ...args], options);
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

export interface DeploymentOptions {
  readonly name?: string;
  readonly namespace: string;
  readonly image?: string;
  readonly replicas?: number;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}

export function deployment(options: DeploymentOptions): Record<string, unknown> {
  const name = options.name ?? 'api';
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: options.namespace,
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.annotations ? { annotations: options.annotations } : {}),
    },
    spec: {
      replicas: options.replicas ?? 2,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name, image: options.image ?? `registry.example/${name}:1.0` }] },
      },
    },
  };
}

/** A namespace labelled critical (by default), made by the admin; returns its name. */
export async function namespace(prefix: string, options: { critical?: boolean; labels?: Record<string, string> } = {}): Promise<string> {
  const name = unique(prefix);
  await kubectlOk(['create', 'namespace', name]);
  const labels = { ...(options.critical === false ? {} : { 'twokey.dev/critical': 'true' }), ...options.labels };
  if (Object.keys(labels).length > 0) await kubectlOk(['label', 'namespace', name, ...Object.entries(labels).map(([k, v]) => `${k}=${v}`)]);
  return name;
}

export const DIGEST = /bound to digest (sha256:[0-9a-f]{64})/;

/** The digest a refusal names. */
export function digestIn(message: string): string {
  const digest = DIGEST.exec(message)?.[1];
  if (!digest) throw new Error(`no digest in: ${message}`);
  return digest;
}

export interface ApproveOptions {
  readonly approver: string;
  readonly change?: string;
  readonly action?: 'deploy' | 'delete' | 'unprotect';
  readonly digest: string;
  readonly file: string;
  readonly requester?: string;
}

/** One approval, minted by `twokey approve` with the change system's key from the install. */
export async function approve(options: ApproveOptions): Promise<string> {
  const result = await twokey([
    'approve',
    '--private-key',
    plane.twokey.issuerKey,
    '--issuer',
    ISSUER,
    '--audience',
    CLUSTER,
    '--approver',
    options.approver,
    '--change',
    options.change ?? 'CHG-E2E',
    '--action',
    options.action ?? 'deploy',
    '--digest',
    options.digest,
    '-f',
    options.file,
    ...(options.requester ? ['--requester', options.requester] : []),
  ]);
  if (result.code !== 0) throw new Error(`twokey approve exited ${result.code}: ${result.stderr}`);
  return result.stdout.trim();
}

/** Approval annotations, as attached to an object. */
export function approvalAnnotations(tokens: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tokens).map(([approver, token]) => [`approval.twokey.dev/${approver}`, token]));
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
