#!/usr/bin/env node
/**
 * The `twokey` command.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isTwokeyError } from '../errors.ts';
import { registerApprove } from './approve.ts';
import { registerCheck } from './check.ts';
import { EXIT, err } from './common.ts';
import { registerDemo } from './demo.ts';
import { registerDigest } from './digest.ts';
import { registerKeygen } from './keygen.ts';
import { registerProbe } from './probe.ts';
import { registerScan } from './scan.ts';
import { registerServe } from './serve.ts';

// src/cli and dist/cli are both two levels below package.json.
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command('twokey')
    .description('Two-person rule for Kubernetes: refuse deploys and deletes of critical workloads without two signed approvals.')
    .version(pkg.version)
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [
    registerServe,
    registerKeygen,
    registerDigest,
    registerApprove,
    registerCheck,
    registerScan,
    registerProbe,
    registerDemo,
  ])
    register(program);
  for (const command of program.commands) command.exitOverride();
  return program;
}

export async function main(argv: readonly string[]): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every parse error is bad input.
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage;
      return;
    }
    err(`twokey: ${isTwokeyError(error) ? error.message : error instanceof Error ? error.message : String(error)}`);
    process.exitCode = EXIT.usage;
  }
}

await main(process.argv.slice(2));
