/**
 * Vitest global setup: compile the CLI once, so CLI tests run the `twokey` command exactly as
 * installed (bin/twokey.js → dist/), and unpack helm and kubectl for the chart tests.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureTools } from './tools.ts';

export default function setup(): void {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  execFileSync(
    process.execPath,
    [fileURLToPath(new URL('../../node_modules/typescript/bin/tsc', import.meta.url)), '-p', 'tsconfig.build.json'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  ensureTools();
}
