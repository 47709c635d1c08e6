/**
 * Shared pieces of the command-line tool: the streams a run writes to and reads from, exit codes,
 * option parsers.
 */

import { type Command, InvalidArgumentError } from 'commander';
import { DIGEST_PATTERN } from '../change/digest.ts';
import { DEFAULT_FIELD_MANAGER } from '../cluster/client.ts';
import { TwokeyError } from '../errors.ts';
import { parseDuration } from '../policy/duration.ts';

/** 0 done or admitted, 1 refused, 2 bad input or failure to run. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

export function usageError(message: string): TwokeyError {
  return new TwokeyError('ERR_USAGE', message);
}

export function durationOption(value: string): number {
  const seconds = parseDuration(value);
  if (seconds === undefined) throw new InvalidArgumentError('expected a duration such as 90s, 15m or 1h');
  return seconds;
}

export function portOption(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('expected a port number (0-65535)');
  return port;
}

export function positiveIntegerOption(value: string): number {
  const number = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(number) || number < 1)
    throw new InvalidArgumentError('expected a positive whole number');
  return number;
}

export function digestOption(value: string): string {
  if (!DIGEST_PATTERN.test(value)) throw new InvalidArgumentError('expected sha256: followed by 64 lowercase hex digits');
  return value;
}

/** A stream the CLI writes to: the process's own, or a test's. */
export interface OutputStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** What one run of the CLI reads and writes. */
export interface CliIo {
  readonly stdout: OutputStream;
  readonly stderr: OutputStream;
  /** Read for `-f -`. */
  readonly stdin: AsyncIterable<Uint8Array | string>;
}

/** One run of the CLI: where its commands write, and the exit code they leave. */
export class Terminal {
  readonly io: CliIo;
  exitCode: number = EXIT.ok;

  constructor(io: CliIo) {
    this.io = io;
  }

  out = (line = ''): void => {
    this.io.stdout.write(`${line}\n`);
  };

  err = (line: string): void => {
    this.io.stderr.write(`${line}\n`);
  };
}

export interface ClusterFlags {
  fieldManager?: string;
  kubeconfig?: string;
  context?: string;
}

/** The kubectl-like options of commands that talk to a cluster. */
export function withClusterOptions(command: Command): Command {
  return command
    .option('--kubeconfig <file>', 'kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use');
}

/** For commands that dry-run an apply: which field manager it applies as. */
export function withFieldManagerOption(command: Command): Command {
  return command.option(
    '--field-manager <name>',
    'with --server: the field manager of the dry-run apply; use the one your real apply uses (kubectl apply --server-side: kubectl, Helm: helm), since fields other managers own are kept',
    DEFAULT_FIELD_MANAGER,
  );
}

export function kubeConfigOptions(flags: ClusterFlags): { kubeconfig?: string; context?: string } {
  return { ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}), ...(flags.context ? { context: flags.context } : {}) };
}
