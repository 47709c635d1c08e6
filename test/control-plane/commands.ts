/**
 * Running the real kubectl, helm and `twokey` commands as a person types them (separate
 * processes, exit codes, what they print), and the objects and approvals they are run with. The
 * control-plane tests and `npm run cluster:demo` both use these.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const TWOKEY_BIN = join(ROOT, 'bin', 'twokey.js');

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

/** Runs a command with `kubeconfig` as KUBECONFIG; resolves with its exit code and output. */
export function runCommand(kubeconfig: string, file: string, args: readonly string[], options: RunOptions = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      {
        cwd: ROOT,
        env: { ...process.env, KUBECONFIG: kubeconfig, ...options.env },
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

export const DIGEST = /bound to digest (sha256:[0-9a-f]{64})/;

/** The digest a refusal names. */
export function digestIn(message: string): string {
  const digest = DIGEST.exec(message)?.[1];
  if (!digest) throw new Error(`no digest in: ${message}`);
  return digest;
}

/** Approval annotations, as attached to an object. */
export function approvalAnnotations(tokens: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tokens).map(([approver, token]) => [`approval.twokey.dev/${approver}`, token]));
}

export interface ApproveOptions {
  readonly approver: string;
  readonly change?: string;
  readonly action?: 'deploy' | 'delete' | 'unprotect';
  readonly digest: string;
  readonly file: string;
  readonly requester?: string;
}

/** The arguments of `twokey approve` that sign as the change system with `issuerKey`, for `approver` and `change`. */
function signerArgs(issuerKey: string, issuer: string, cluster: string, approver: string, change: string): string[] {
  return ['approve', '--private-key', issuerKey, '--issuer', issuer, '--audience', cluster, '--approver', approver, '--change', change];
}

/** The arguments of `twokey approve` with the change system's key `issuerKey`. */
export function approveArgs(issuerKey: string, issuer: string, cluster: string, options: ApproveOptions): string[] {
  return [
    ...signerArgs(issuerKey, issuer, cluster, options.approver, options.change ?? 'CHG-E2E'),
    '--action',
    options.action ?? 'deploy',
    '--digest',
    options.digest,
    '-f',
    options.file,
    ...(options.requester ? ['--requester', options.requester] : []),
  ];
}

export interface PlanApproveOptions {
  /** The plan document (twokey plan -o json). */
  readonly plan: string;
  readonly approver: string;
  readonly change: string;
}

/** The arguments of `twokey approve --plan`: one token of `approver` for every entry of the plan. */
export function planApproveArgs(issuerKey: string, issuer: string, cluster: string, options: PlanApproveOptions): string[] {
  return [...signerArgs(issuerKey, issuer, cluster, options.approver, options.change), '--plan', options.plan];
}
