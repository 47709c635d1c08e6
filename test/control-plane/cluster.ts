/**
 * A real, local control plane for the end-to-end suite: etcd, kube-apiserver and
 * kube-controller-manager on loopback only (every bind and advertise address is 127.0.0.1), with
 * RBAC, a CA and certificates made with openssl, a service-account signing key, and the users the
 * tests act as: an admin in system:masters, the people alice and bob, and an agent service account
 * with broad rights. There are no nodes, so no pod ever runs; everything twokey meets in production
 * besides pods is real: admission, RBAC, the namespace controller, the garbage collector, the
 * deployment and replicaset controllers, service accounts and their tokens.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Binaries, ensureBinaries } from './binaries.ts';

const run = promisify(execFile);

export const LOOPBACK = '127.0.0.1';

/** The controllers twokey meets in production (as kubeadm names and runs them). */
export const CONTROLLERS = [
  'namespace-controller',
  'garbage-collector-controller',
  'deployment-controller',
  'replicaset-controller',
  'serviceaccount-controller',
  'serviceaccount-token-controller',
  'endpointslice-controller',
  // Reports type-checking problems of ValidatingAdmissionPolicies (the chart's guard) in their status.
  'validatingadmissionpolicy-status-controller',
] as const;

/** Users of the test kubeconfig, by context name. */
export const USERS = {
  admin: { commonName: 'twokey-e2e-admin', groups: ['system:masters'] },
  alice: { commonName: 'alice', groups: ['developers'] },
  bob: { commonName: 'bob', groups: ['developers'] },
} as const;

/** The agent: a service account with cluster-admin rights, as CI pipelines and coding agents often have. */
export const AGENT = { namespace: 'ci', name: 'agent', username: 'system:serviceaccount:ci:agent' } as const;
/** The users kube-controller-manager's cleanup acts as, with --use-service-account-credentials. */
export const NAMESPACE_CONTROLLER = 'system:serviceaccount:kube-system:namespace-controller';
export const GARBAGE_COLLECTOR = 'system:serviceaccount:kube-system:generic-garbage-collector';

export interface ControlPlane {
  readonly stateDir: string;
  readonly binaries: Binaries;
  /** kubeconfig with contexts admin (current), alice, bob and agent. */
  readonly kubeconfig: string;
  readonly server: string;
  readonly caFile: string;
  readonly ports: { readonly etcd: number; readonly apiserver: number; readonly controllerManager: number };
  /** Stops every process of the control plane. */
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly stateDir: string;
  readonly log?: (line: string) => void;
  /** 'parent' for tests; by default the processes run until `stopControlPlane` (npm run cluster:down). */
  readonly lifetime?: Lifetime;
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// ---- certificates ----

async function openssl(cwd: string, args: readonly string[]): Promise<void> {
  await run('openssl', [...args], { cwd });
}

async function ecKey(dir: string, name: string): Promise<void> {
  await openssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', `${name}.key`]);
}

/** A certificate signed by the CA; `extensions` is an openssl extension section. */
async function signedCertificate(dir: string, name: string, subject: string, extensions: string): Promise<void> {
  await ecKey(dir, name);
  await openssl(dir, ['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`]);
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, [
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '7',
    '-sha256',
    '-extfile',
    `${name}.ext`,
    '-out',
    `${name}.crt`,
  ]);
}

function subjectOf(user: { commonName: string; groups: readonly string[] }): string {
  return `/CN=${user.commonName}${user.groups.map((group) => `/O=${group}`).join('')}`;
}

const CLIENT_EXTENSIONS = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n';

async function makePki(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await ecKey(dir, 'ca');
  await openssl(dir, [
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=twokey-e2e-ca',
    '-days',
    '7',
    '-sha256',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    'ca.crt',
  ]);
  await signedCertificate(
    dir,
    'apiserver',
    '/CN=kube-apiserver',
    'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' +
      'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n',
  );
  await signedCertificate(dir, 'controller-manager', '/CN=system:kube-controller-manager', CLIENT_EXTENSIONS);
  for (const [name, user] of Object.entries(USERS)) await signedCertificate(dir, name, subjectOf(user), CLIENT_EXTENSIONS);
  // The key service-account tokens are signed with (ES256) and its public half, for verifying them.
  await ecKey(dir, 'service-account');
  await openssl(dir, ['pkey', '-in', 'service-account.key', '-pubout', '-out', 'service-account.pub']);
}

// ---- kubeconfig ----

interface KubeconfigUser {
  readonly name: string;
  readonly user: Record<string, string>;
}

function base64File(path: string): string {
  return readFileSync(path).toString('base64');
}

export function certificateUser(pki: string, name: string): KubeconfigUser {
  return {
    name,
    user: {
      'client-certificate-data': base64File(join(pki, `${name}.crt`)),
      'client-key-data': base64File(join(pki, `${name}.key`)),
    },
  };
}

export function kubeconfigDocument(server: string, caFile: string, users: readonly KubeconfigUser[], current: string): string {
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'twokey-e2e', cluster: { server, 'certificate-authority-data': base64File(caFile) } }],
      users,
      contexts: users.map(({ name }) => ({ name, context: { cluster: 'twokey-e2e', user: name, namespace: 'default' } })),
      'current-context': current,
    },
    null,
    2,
  );
}

// ---- processes ----

/**
 * How long a started process lives: until stopped (undefined), until this process ends however
 * it ends ('parent': a guard reads a pipe from here and stops the command when it closes, even
 * after SIGKILL), or until the process with this pid ends (a guard polls it every second).
 */
export type Lifetime = undefined | 'parent' | { readonly pid: number };

const GUARD_PIPE = 'exec 3<&0; "$@" </dev/null & child=$!; { read -r _ <&3; kill "$child" 2>/dev/null; } & wait "$child"';
const GUARD_PID =
  'watched=$1; shift; "$@" </dev/null & child=$!; while kill -0 "$watched" 2>/dev/null && kill -0 "$child" 2>/dev/null; do sleep 1; done; kill "$child" 2>/dev/null; wait "$child"';

function startProcess(name: string, binary: string, args: readonly string[], logDir: string, lifetime: Lifetime): ChildProcess {
  const log = openSync(join(logDir, `${name}.log`), 'a');
  let child: ChildProcess;
  if (lifetime === 'parent') {
    child = spawn('bash', ['-c', GUARD_PIPE, name, binary, ...args], { detached: true, stdio: ['pipe', log, log] });
    // The pipe must not keep this process alive, but stays open while it lives.
    (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  } else if (lifetime) {
    child = spawn('bash', ['-c', GUARD_PID, name, String(lifetime.pid), binary, ...args], { detached: true, stdio: ['ignore', log, log] });
    child.unref();
  } else {
    child = spawn(binary, [...args], { detached: true, stdio: ['ignore', log, log] });
    child.unref();
  }
  closeSync(log);
  return child;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops process groups and waits for them to end (SIGKILL after 10 s). */
async function stopGroups(pids: readonly number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 10_000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  for (const pid of pids.filter(alive)) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function pidFile(stateDir: string): string {
  return join(stateDir, 'pids');
}

async function recordPid(stateDir: string, name: string, pid: number | undefined): Promise<void> {
  if (pid === undefined) throw new Error(`${name} did not start`);
  const file = pidFile(stateDir);
  const known = existsSync(file) ? await readFile(file, 'utf8') : '';
  await writeFile(file, `${known}${name} ${pid}\n`);
}

/** Stops whatever a control plane (and the twokey server beside it) started in `stateDir`. */
export async function stopControlPlane(stateDir: string): Promise<void> {
  const file = pidFile(stateDir);
  if (!existsSync(file)) return;
  const pids = (await readFile(file, 'utf8'))
    .split('\n')
    .map((line) => Number(line.split(' ')[1]))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
  // Stopped in reverse start order: the server before the apiserver, the apiserver before etcd.
  for (const pid of pids.reverse()) await stopGroups([pid]);
  await rm(file, { force: true });
}

/** Starts a process of the control plane (or beside it) and records it for stopControlPlane. */
export async function startRecorded(
  stateDir: string,
  name: string,
  binary: string,
  args: readonly string[],
  lifetime: Lifetime,
): Promise<ChildProcess> {
  const logDir = join(stateDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const child = startProcess(name, binary, args, logDir, lifetime);
  await recordPid(stateDir, name, child.pid);
  return child;
}

export function logTail(stateDir: string, name: string, lines = 30): string {
  const file = join(stateDir, 'logs', `${name}.log`);
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)';
}

/** Polls `check` until it holds; fails with `what` and the process's log otherwise. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  options: { timeoutMs: number; child?: ChildProcess; stateDir?: string; logName?: string },
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    const exited = options.child && options.child.exitCode !== null;
    if (exited || Date.now() > deadline) {
      const log = options.stateDir && options.logName ? `\n${logTail(options.stateDir, options.logName)}` : '';
      throw new Error(
        `${what} ${exited ? `exited (code ${options.child?.exitCode})` : `not ready after ${options.timeoutMs / 1000} s`}${log}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function httpOk(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return response.ok;
}

/** GET over HTTPS with a client certificate; resolves with the status and body. */
export function httpsGet(url: string, pki: string, user = 'admin'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(pki, 'ca.crt')),
        cert: readFileSync(join(pki, `${user}.crt`)),
        key: readFileSync(join(pki, `${user}.key`)),
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// ---- the control plane ----

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  # What twokey judges, with the audit annotations webhooks add.
  - level: Metadata
    resources:
      - group: apps
        resources: [deployments, deployments/status, deployments/scale, statefulsets, statefulsets/status, daemonsets, daemonsets/status]
      - group: batch
        resources: [cronjobs, cronjobs/status]
      - group: ""
        resources: [namespaces, namespaces/status, namespaces/finalize]
  - level: None
`;

export async function startControlPlane(options: StartOptions): Promise<ControlPlane> {
  const log = options.log ?? (() => {});
  const tied = options.lifetime;
  const { stateDir } = options;
  const binaries = await ensureBinaries(log);
  await stopControlPlane(stateDir);
  await rm(stateDir, { recursive: true, force: true });
  const pki = join(stateDir, 'pki');
  await makePki(pki);
  await writeFile(join(stateDir, 'audit-policy.yaml'), AUDIT_POLICY);
  const ports = { etcd: await freePort(), etcdPeer: await freePort(), apiserver: await freePort(), controllerManager: await freePort() };
  const stop = () => stopControlPlane(stateDir);

  try {
    const etcdUrl = `http://${LOOPBACK}:${ports.etcd}`;
    const peerUrl = `http://${LOOPBACK}:${ports.etcdPeer}`;
    log(`etcd on ${etcdUrl}`);
    const etcd = await startRecorded(
      stateDir,
      'etcd',
      binaries.etcd,
      [
        '--name=e2e',
        `--data-dir=${join(stateDir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=e2e=${peerUrl}`,
        // A test cluster lives minutes: durability is not worth its fsyncs on a shared disk.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ],
      tied,
    );
    await waitFor('etcd', () => httpOk(`${etcdUrl}/health`), { timeoutMs: 30_000, child: etcd, stateDir, logName: 'etcd' });

    const server = `https://${LOOPBACK}:${ports.apiserver}`;
    log(`kube-apiserver on ${server}`);
    const apiserver = await startRecorded(
      stateDir,
      'kube-apiserver',
      binaries.kubeApiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        `--bind-address=${LOOPBACK}`,
        `--advertise-address=${LOOPBACK}`,
        `--secure-port=${ports.apiserver}`,
        `--cert-dir=${join(stateDir, 'apiserver-certs')}`,
        `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
        `--client-ca-file=${join(pki, 'ca.crt')}`,
        '--authorization-mode=RBAC',
        '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${join(pki, 'service-account.pub')}`,
        `--service-account-signing-key-file=${join(pki, 'service-account.key')}`,
        '--service-cluster-ip-range=10.96.0.0/16',
        // The kubernetes Service's endpoints would name 127.0.0.1, which endpoints may not hold.
        '--endpoint-reconciler-type=none',
        `--audit-policy-file=${join(stateDir, 'audit-policy.yaml')}`,
        `--audit-log-path=${join(stateDir, 'logs', 'audit.log')}`,
        '--profiling=false',
        '--v=1',
      ],
      tied,
    );
    await waitFor('kube-apiserver', async () => (await httpsGet(`${server}/readyz`, pki)).status === 200, {
      timeoutMs: 90_000,
      child: apiserver,
      stateDir,
      logName: 'kube-apiserver',
    });

    const caFile = join(pki, 'ca.crt');
    const kubeconfig = join(stateDir, 'kubeconfig');
    const users = Object.keys(USERS).map((name) => certificateUser(pki, name));
    await writeFile(kubeconfig, kubeconfigDocument(server, caFile, users, 'admin'), { mode: 0o600 });
    const controllerKubeconfig = join(stateDir, 'controller-manager.kubeconfig');
    await writeFile(
      controllerKubeconfig,
      kubeconfigDocument(server, caFile, [certificateUser(pki, 'controller-manager')], 'controller-manager'),
    );

    log(`kube-controller-manager (${CONTROLLERS.join(', ')})`);
    const controllerManager = await startRecorded(
      stateDir,
      'kube-controller-manager',
      binaries.kubeControllerManager,
      [
        `--kubeconfig=${controllerKubeconfig}`,
        `--authentication-kubeconfig=${controllerKubeconfig}`,
        `--authorization-kubeconfig=${controllerKubeconfig}`,
        `--bind-address=${LOOPBACK}`,
        `--secure-port=${ports.controllerManager}`,
        `--cert-dir=${join(stateDir, 'controller-manager-certs')}`,
        // As kubeadm runs it: each controller acts as its own service account in kube-system.
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${join(pki, 'service-account.key')}`,
        `--root-ca-file=${caFile}`,
        `--controllers=${CONTROLLERS.join(',')}`,
        '--leader-elect=false',
        // Short enough that a test sees the namespace controller finish within seconds.
        '--namespace-sync-period=30s',
        '--v=1',
      ],
      tied,
    );
    const kubectl = (...args: string[]) => run(binaries.kubectl, ['--kubeconfig', kubeconfig, ...args]);
    // The serviceaccount controller making `default` is the sign that the controllers act.
    await waitFor(
      'kube-controller-manager',
      async () => {
        await kubectl('get', 'serviceaccount', 'default', '-n', 'default');
        return true;
      },
      { timeoutMs: 90_000, child: controllerManager, stateDir, logName: 'kube-controller-manager' },
    );

    log(`users: ${[...Object.keys(USERS), 'agent'].join(', ')}`);
    await setUpUsers(kubectl, stateDir, server, caFile, pki);

    return { stateDir, binaries, kubeconfig, server, caFile, ports, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** RBAC for the people (edit everything, as hurried humans often may) and the agent's token. */
async function setUpUsers(
  kubectl: (...args: string[]) => Promise<{ stdout: string }>,
  stateDir: string,
  server: string,
  caFile: string,
  pki: string,
): Promise<void> {
  await kubectl('create', 'clusterrolebinding', 'developers-cluster-admin', '--clusterrole=cluster-admin', '--group=developers');
  await kubectl('create', 'namespace', AGENT.namespace);
  await kubectl('create', 'serviceaccount', AGENT.name, '-n', AGENT.namespace);
  await kubectl(
    'create',
    'clusterrolebinding',
    'agent-cluster-admin',
    '--clusterrole=cluster-admin',
    `--serviceaccount=${AGENT.namespace}:${AGENT.name}`,
  );
  const { stdout: token } = await kubectl('create', 'token', AGENT.name, '-n', AGENT.namespace, '--duration=24h');
  const users = [...Object.keys(USERS).map((name) => certificateUser(pki, name)), { name: 'agent', user: { token: token.trim() } }];
  await writeFile(join(stateDir, 'kubeconfig'), kubeconfigDocument(server, caFile, users, 'admin'), { mode: 0o600 });
}
