/**
 * Global setup of the control-plane suite: compiles the `twokey` command as installed (bin → dist),
 * starts the local control plane from the built binaries (`npm run test:e2e` builds or reuses them
 * first), installs twokey with the real helm and runs its server. Everything stops when the suite
 * ends, or when this process ends however it ends.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { startControlPlane } from './cluster.ts';
import { installTwokey } from './twokey.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    controlPlane: {
      readonly stateDir: string;
      readonly kubeconfig: string;
      readonly server: string;
      readonly kubectl: string;
      readonly twokey: { readonly url: string; readonly issuerKey: string; readonly policyFile: string; readonly dir: string };
      /** The process that owns the control plane: a server a test restarts lives as long as it. */
      readonly ownerPid: number;
    };
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  const stateDir = await mkdtemp(join(tmpdir(), 'twokey-control-plane-'));
  const log = (line: string) => process.stderr.write(`[control plane] ${line}\n`);
  const plane = await startControlPlane({ stateDir, log, lifetime: 'parent' });
  const twokey = await installTwokey(plane, { log, lifetime: 'parent' }).catch(async (error: unknown) => {
    await plane.stop();
    throw error;
  });
  project.provide('controlPlane', {
    stateDir,
    kubeconfig: plane.kubeconfig,
    server: plane.server,
    kubectl: plane.binaries.kubectl,
    twokey: { url: twokey.url, issuerKey: twokey.issuerKey, policyFile: twokey.policyFile, dir: twokey.dir },
    ownerPid: process.pid,
  });
  return async () => {
    await plane.stop();
    if (!process.env.TWOKEY_KEEP_STATE) await rm(stateDir, { recursive: true, force: true });
    else log(`state kept in ${stateDir}`);
  };
}
