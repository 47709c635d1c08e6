/**
 * The `twokey` command, run in process: `run` parses the arguments, runs the command with the
 * streams it is given and answers the exit code. bin/twokey.js runs it for the installed command.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isTwokeyError } from '../errors.ts';
import { registerApprove } from './approve.ts';
import { registerAttach } from './attach.ts';
import { registerCheck } from './check.ts';
import { type CliIo, EXIT, Terminal } from './common.ts';
import { registerCountersign } from './countersign.ts';
import { registerDemo } from './demo.ts';
import { registerDigest } from './digest.ts';
import { registerKeygen } from './keygen.ts';
import { registerPlan } from './plan.ts';
import { registerProbe } from './probe.ts';
import { registerScan } from './scan.ts';
import { registerServe } from './serve.ts';

function version(): string {
  // src/cli and dist/cli are both two levels below package.json.
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

export function buildProgram(terminal: Terminal): Command {
  const { stdout, stderr } = terminal.io;
  const program = new Command('twokey')
    .configureOutput({
      writeOut: (text) => void stdout.write(text),
      writeErr: (text) => void stderr.write(text),
      // As commander measures its own streams: a terminal's width, else 80 columns.
      getOutHelpWidth: () => (stdout.isTTY && stdout.columns ? stdout.columns : 80),
      getErrHelpWidth: () => (stderr.isTTY && stderr.columns ? stderr.columns : 80),
    })
    .description('Two-person rule for Kubernetes: refuse deploys and deletes of critical workloads without two signed approvals.')
    .version(version())
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  for (const register of [
    registerServe,
    registerKeygen,
    registerDigest,
    registerPlan,
    registerApprove,
    registerCountersign,
    registerAttach,
    registerCheck,
    registerScan,
    registerProbe,
    registerDemo,
  ])
    register(program, terminal);
  for (const command of program.commands) command.exitOverride();
  return program;
}

/** Runs the command line `argv` (without the program name) and answers its exit code. */
export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const terminal = new Terminal(io);
  try {
    await buildProgram(terminal).parseAsync([...argv], { from: 'user' });
    return terminal.exitCode;
  } catch (error) {
    // Help and version exit 0; every parse error is bad input.
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    terminal.err(`twokey: ${isTwokeyError(error) ? error.message : error instanceof Error ? error.message : String(error)}`);
    return EXIT.usage;
  }
}
