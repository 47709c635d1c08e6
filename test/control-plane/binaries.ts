/**
 * The control plane's programs, built from source at one pinned version: kube-apiserver,
 * kube-controller-manager and kubectl from k8s.io/kubernetes, etcd from go.etcd.io/etcd/server/v3
 * (the Go modules under go/). Built once per machine into a cache folder keyed by the versions and
 * the modules' go.mod and go.sum, and reused after. Test tooling only: Go never builds the product.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const KUBERNETES_VERSION = 'v1.36.3';
export const ETCD_VERSION = 'v3.6.16';
/** When the pinned Kubernetes release was tagged (the module proxy's time for it): the build date stamped in. */
const KUBERNETES_BUILD_DATE = '2026-07-22T18:07:38Z';

const GO_MODULES = fileURLToPath(new URL('./go/', import.meta.url));
const KUBERNETES_COMMANDS = ['kube-apiserver', 'kube-controller-manager', 'kubectl'] as const;

export interface Binaries {
  readonly dir: string;
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
}

/** The go command: $GO, else the machine's install at /usr/local/go, else `go` on PATH. */
export function goCommand(): string {
  if (process.env.GO) return process.env.GO;
  return existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go';
}

/**
 * What kubectl, helm and the components report as their version. Without it they report
 * v0.0.0-master, and helm refuses charts whose kubeVersion the cluster then fails.
 */
function versionFlags(): string {
  const [major, minor] = KUBERNETES_VERSION.replace(/^v/, '').split('.');
  const values = {
    gitVersion: KUBERNETES_VERSION,
    gitMajor: major,
    gitMinor: minor,
    gitTreeState: 'clean',
    buildDate: KUBERNETES_BUILD_DATE,
  };
  return ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']
    .flatMap((pkg) => Object.entries(values).map(([key, value]) => `-X ${pkg}.${key}=${value}`))
    .join(' ');
}

function cacheKey(): string {
  const hash = createHash('sha256').update(versionFlags());
  for (const module of ['kubernetes', 'etcd']) {
    for (const file of ['go.mod', 'go.sum']) hash.update(readFileSync(join(GO_MODULES, module, file)));
  }
  return `${KUBERNETES_VERSION}-etcd-${ETCD_VERSION}-${hash.digest('hex').slice(0, 12)}`;
}

/** Where built binaries live: $TWOKEY_CONTROL_PLANE_CACHE, else the user's cache folder. */
export function binariesDir(): string {
  const root =
    process.env.TWOKEY_CONTROL_PLANE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'twokey', 'control-plane');
  return join(root, cacheKey());
}

function binariesIn(dir: string): Binaries {
  return {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubectl: join(dir, 'kubectl'),
  };
}

function complete(binaries: Binaries): boolean {
  return [binaries.etcd, binaries.kubeApiserver, binaries.kubeControllerManager, binaries.kubectl].every((file) => existsSync(file));
}

function goBuild(cwd: string, args: readonly string[], log: (line: string) => void): Promise<void> {
  const env = { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local', GOWORK: 'off', GOFLAGS: '-mod=readonly' };
  return new Promise((resolve, reject) => {
    const child = spawn(goCommand(), ['build', ...args], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    child.on('error', (error) => reject(new Error(`cannot run ${goCommand()} (set GO to the go command): ${error.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else {
        log(output.trim());
        reject(new Error(`go build ${args.at(-1)} failed (exit ${code})`));
      }
    });
  });
}

/** The binaries, built first if this machine has not built this version yet. */
export async function ensureBinaries(log: (line: string) => void = () => {}): Promise<Binaries> {
  const dir = binariesDir();
  const binaries = binariesIn(dir);
  if (complete(binaries)) return binaries;
  const started = Date.now();
  log(`building kube-apiserver, kube-controller-manager and kubectl ${KUBERNETES_VERSION} and etcd ${ETCD_VERSION} into ${dir}`);
  log('(once per machine: about 15 minutes on 2 cores; later runs reuse them)');
  // Built beside the cache entry and moved in whole, so an interrupted build never looks complete.
  const building = `${dir}.building-${process.pid}`;
  await rm(building, { recursive: true, force: true });
  await mkdir(building, { recursive: true });
  try {
    await goBuild(join(GO_MODULES, 'etcd'), ['-o', join(building, 'etcd'), '.'], log);
    log(`etcd built (${Math.round((Date.now() - started) / 1000)} s)`);
    await goBuild(
      join(GO_MODULES, 'kubernetes'),
      ['-o', `${building}/`, '-ldflags', versionFlags(), ...KUBERNETES_COMMANDS.map((command) => `k8s.io/kubernetes/cmd/${command}`)],
      log,
    );
    await rm(dir, { recursive: true, force: true });
    await rename(building, dir);
  } catch (error) {
    await rm(building, { recursive: true, force: true });
    throw error;
  }
  log(`control plane built in ${Math.round((Date.now() - started) / 1000)} s`);
  return binaries;
}

/** The version a binary reports, e.g. "Kubernetes v1.36.3". */
export async function reportedVersion(binary: string): Promise<string> {
  const { stdout } = await promisify(execFile)(binary, ['--version']);
  return stdout.trim();
}
