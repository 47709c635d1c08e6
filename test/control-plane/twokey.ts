/**
 * twokey installed into the local control plane with the real helm, from charts/twokey. Without
 * nodes no pod runs, so the server runs on this host as `twokey serve`, and the chart's own webhook
 * configuration reaches it through `webhook.url` (an https URL with an IP host). Everything else the
 * chart renders (protection policy, RBAC, PDB, PriorityClass, NetworkPolicy, the Deployment that
 * never gets a node) is created and enforced by the real API server. The server runs with what the
 * chart made: its policy ConfigMap, its JWKS Secret, its TLS Secret, and its service account's
 * token (so the chart's RBAC is what the namespace watch and Events get).
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { JWK } from 'jose';
import { generateIssuerKey } from '../../src/keys/signing.ts';
import { ensureTools, HELM } from '../support/tools.ts';
import { type ControlPlane, freePort, kubeconfigDocument, type Lifetime, LOOPBACK, logTail, startRecorded, waitFor } from './cluster.ts';

const run = promisify(execFile);

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART = join(ROOT, 'charts', 'twokey');
const BIN = join(ROOT, 'bin', 'twokey.js');

export const RELEASE = { name: 'twokey', namespace: 'twokey' } as const;
export const ISSUER = 'https://change.e2e.example';
export const CLUSTER = 'e2e-1';
/** Critical by the policy's list (others are made critical by label in the tests). */
export const LISTED_NAMESPACES = ['checkout'] as const;

export interface InstalledTwokey {
  readonly url: string;
  readonly port: number;
  readonly issuer: string;
  readonly cluster: string;
  /** The change system's private key (for twokey approve) and its public JWKS. */
  readonly issuerKey: string;
  readonly privateJwk: JWK;
  readonly policyFile: string;
  readonly valuesFile: string;
  readonly dir: string;
}

export interface InstallOptions {
  readonly log?: (line: string) => void;
  readonly lifetime?: Lifetime;
}

export async function helmCommand(plane: ControlPlane, args: readonly string[], context = 'admin') {
  ensureTools();
  return run(HELM, [...args, '--kubeconfig', plane.kubeconfig, '--kube-context', context], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
}

async function kubectlJson(plane: ControlPlane, ...args: string[]): Promise<Record<string, unknown>> {
  const { stdout } = await run(plane.binaries.kubectl, ['--kubeconfig', plane.kubeconfig, ...args, '-o', 'json'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

function dataOf(object: Record<string, unknown>, key: string, encoded: boolean): string {
  const data = object.data as Record<string, string> | undefined;
  const value = data?.[key];
  if (value === undefined) throw new Error(`${key} is missing from what the chart made`);
  return encoded ? Buffer.from(value, 'base64').toString('utf8') : value;
}

function readyz(url: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(`${url}/readyz`, { ca, timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

export async function installTwokey(plane: ControlPlane, options: InstallOptions = {}): Promise<InstalledTwokey> {
  const log = options.log ?? (() => {});
  const dir = join(plane.stateDir, 'twokey');
  await mkdir(dir, { recursive: true });

  const key = await generateIssuerKey('EdDSA', 'e2e-1');
  const issuerKey = join(dir, 'change.jwk.json');
  await writeFile(issuerKey, JSON.stringify(key.privateJwk), { mode: 0o600 });
  await writeFile(join(dir, 'jwks.json'), JSON.stringify(key.jwks));

  const port = await freePort();
  const url = `https://${LOOPBACK}:${port}`;
  const values = {
    policy: { cluster: CLUSTER, critical: { namespaces: [...LISTED_NAMESPACES] } },
    issuers: [{ issuer: ISSUER, jwks: key.jwks }],
    webhook: { url, timeoutSeconds: 10 },
    replicaCount: 1,
  };
  const valuesFile = join(dir, 'values.json');
  await writeFile(valuesFile, JSON.stringify(values, null, 2));
  log(`helm install ${RELEASE.name} charts/twokey -n ${RELEASE.namespace} --create-namespace -f ${valuesFile}`);
  await helmCommand(plane, ['install', RELEASE.name, CHART, '-n', RELEASE.namespace, '--create-namespace', '-f', valuesFile]);

  // What the chart made, as the pod would mount it.
  const tls = await kubectlJson(plane, 'get', 'secret', `${RELEASE.name}-tls`, '-n', RELEASE.namespace);
  const jwks = await kubectlJson(plane, 'get', 'secret', `${RELEASE.name}-jwks`, '-n', RELEASE.namespace);
  const policy = await kubectlJson(plane, 'get', 'configmap', `${RELEASE.name}-policy`, '-n', RELEASE.namespace);
  const ca = dataOf(tls, 'ca.crt', true);
  await writeFile(join(dir, 'tls.crt'), dataOf(tls, 'tls.crt', true));
  await writeFile(join(dir, 'tls.key'), dataOf(tls, 'tls.key', true), { mode: 0o600 });
  await writeFile(join(dir, 'ca.crt'), ca);
  await mkdir(join(dir, 'issuers'), { recursive: true });
  await writeFile(join(dir, 'issuers', 'issuer-0.json'), dataOf(jwks, 'issuer-0.json', true));
  // The pod mounts the JWKS at /etc/twokey/issuers; here it sits beside the policy.
  const policyFile = join(dir, 'policy.yaml');
  await writeFile(policyFile, dataOf(policy, 'policy.yaml', false).replaceAll('/etc/twokey/issuers/', `${join(dir, 'issuers')}/`));

  // The server acts as the chart's service account, with the chart's RBAC.
  const { stdout: token } = await run(plane.binaries.kubectl, [
    '--kubeconfig',
    plane.kubeconfig,
    'create',
    'token',
    RELEASE.name,
    '-n',
    RELEASE.namespace,
    '--duration=24h',
  ]);
  const serverKubeconfig = join(dir, 'server.kubeconfig');
  await writeFile(
    serverKubeconfig,
    kubeconfigDocument(plane.server, plane.caFile, [{ name: 'twokey', user: { token: token.trim() } }], 'twokey'),
    {
      mode: 0o600,
    },
  );

  const args = [
    BIN,
    'serve',
    `--config=${policyFile}`,
    `--tls-cert=${join(dir, 'tls.crt')}`,
    `--tls-key=${join(dir, 'tls.key')}`,
    `--host=${LOOPBACK}`,
    `--port=${port}`,
    `--kubeconfig=${serverKubeconfig}`,
    '--poll-interval=1s',
  ];
  await writeFile(join(dir, 'server.json'), JSON.stringify({ url, args }));
  log(`twokey serve on ${url}`);
  await startTwokeyServer(plane.stateDir, options.lifetime);
  return { url, port, issuer: ISSUER, cluster: CLUSTER, issuerKey, privateJwk: key.privateJwk, policyFile, valuesFile, dir };
}

/** Starts `twokey serve` as installed (again, after stopTwokeyServer), and waits until it is ready. */
export async function startTwokeyServer(stateDir: string, lifetime: Lifetime): Promise<ChildProcess> {
  const dir = join(stateDir, 'twokey');
  const { url, args } = JSON.parse(await readFile(join(dir, 'server.json'), 'utf8')) as { url: string; args: string[] };
  const ca = await readFile(join(dir, 'ca.crt'), 'utf8');
  const server = await startRecorded(stateDir, 'twokey', process.execPath, args, lifetime);
  await waitFor('twokey serve', () => readyz(url, ca), { timeoutMs: 30_000, child: server, stateDir, logName: 'twokey' });
  return server;
}

/** Stops every `twokey serve` started in `stateDir`; the webhook configuration stays in front of the cluster. */
export async function stopTwokeyServer(stateDir: string): Promise<void> {
  const file = join(stateDir, 'pids');
  if (!existsSync(file)) return;
  const pids = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((line) => line.startsWith('twokey '))
    .map((line) => Number(line.split(' ')[1]));
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  for (const pid of pids.filter(alive)) process.kill(-pid, 'SIGTERM');
  await waitFor('twokey serve stopping', async () => !pids.some(alive), { timeoutMs: 20_000 });
}

export function serverLog(plane: ControlPlane, lines = 50): string {
  return logTail(plane.stateDir, 'twokey', lines);
}

export function readCa(installed: InstalledTwokey): string {
  return readFileSync(join(installed.dir, 'ca.crt'), 'utf8');
}
