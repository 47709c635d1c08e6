/**
 * `npm run cluster:build | cluster:up | cluster:down | cluster:demo`: the local control plane
 * by hand. `up` starts it in the background with twokey installed by helm and serving beside it,
 * and prints how to use it; `demo` also plays the two-person rule with the real kubectl; `down`
 * stops everything.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureBinaries, KUBERNETES_VERSION } from './binaries.ts';
import { startControlPlane, stopControlPlane } from './cluster.ts';
import { playDemo } from './demo.ts';
import { installTwokey } from './twokey.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Where `cluster:up` keeps its state (ignored by git). */
export const STATE_DIR = join(ROOT, '.twokey-cluster');

const log = (line: string) => process.stderr.write(`${line}\n`);

async function up(): Promise<void> {
  const plane = await startControlPlane({ stateDir: STATE_DIR, log });
  const twokey = await installTwokey(plane, { log });
  const rel = (path: string) => path.replace(`${ROOT}/`, '');
  log('');
  log(`A ${KUBERNETES_VERSION} control plane is running on ${plane.server}, with twokey installed by helm and serving on ${twokey.url}.`);
  log(`  export KUBECONFIG=${plane.kubeconfig}`);
  log(`  kubectl get validatingwebhookconfigurations,validatingadmissionpolicies   # what helm installed`);
  log(`  kubectl --context agent delete namespace payments                          # refused: critical, no approvals`);
  log(`  change-system key: ${rel(twokey.issuerKey)} (issuer ${twokey.issuer}, cluster ${twokey.cluster})`);
  log(
    `  logs: ${rel(join(STATE_DIR, 'logs'))}/   contexts: admin (system:masters), alice, bob, agent (a service account with cluster-admin)`,
  );
  log('Stop it with: npm run cluster:down');
}

const commands: Record<string, () => Promise<void>> = {
  async build() {
    const binaries = await ensureBinaries(log);
    log(`control plane binaries in ${binaries.dir}`);
  },
  up,
  async down() {
    await stopControlPlane(STATE_DIR);
    log('stopped');
  },
  async demo() {
    await up();
    await playDemo({ stateDir: STATE_DIR });
  },
};

const command = commands[process.argv[2] ?? ''];
if (!command) {
  log(`usage: node test/control-plane/cli.ts ${Object.keys(commands).join('|')}`);
  process.exitCode = 2;
} else {
  command().catch((error: unknown) => {
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exitCode = 1;
  });
}
