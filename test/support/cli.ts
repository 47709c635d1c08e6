/**
 * Runs the `twokey` command: in this process with streams of its own, where what is under test
 * does not need a process of its own (`twokey`), or as a user would, a separate process running
 * the installed command (`runCli`, `serveCli`), where signals, a real process or its logs matter.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { run } from '../../src/cli/main.ts';
import { eventually } from './files.ts';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/twokey.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the command in this process, with `input` as its standard input. */
export async function twokey(args: readonly string[], options: { input?: string } = {}): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, {
    stdout: {
      write: (text: string) => {
        stdout += text;
      },
    },
    stderr: {
      write: (text: string) => {
        stderr += text;
      },
    },
    stdin: Readable.from(options.input === undefined ? [] : [Buffer.from(options.input)]),
  });
  return { code, stdout, stderr };
}

/** The arguments of `twokey approve` for examples/deployment.yaml, signed as `signWith` says (e.g. --private-key FILE). */
export function approveArgs(signWith: readonly string[], approver: string, change: string, file = 'examples/deployment.yaml'): string[] {
  const common = ['--issuer', 'https://change.example.com', '--audience', 'prod-eu-1', '--approver', approver];
  return ['approve', ...signWith, ...common, '--change', change, '-f', file];
}

export function startCli(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [BIN, ...args], {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function runCli(
  args: readonly string[],
  options: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = startCli(args, options);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr?.on('data', (chunk) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`twokey ${args.join(' ')} did not finish in time\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin?.end(options.input ?? '');
  });
}

export interface Served {
  readonly child: ChildProcess;
  /** The JSON log lines written so far. */
  readonly logs: Array<Record<string, unknown>>;
  readonly port: number;
  readonly exited: Promise<number | null>;
}

/** Starts `twokey serve` on loopback, port 0, and waits until it says it is serving. */
export async function serveCli(args: string[], cwd?: string, env?: NodeJS.ProcessEnv): Promise<Served> {
  const child = startCli(['serve', '--host', '127.0.0.1', '--port', '0', ...args], { ...(cwd ? { cwd } : {}), ...(env ? { env } : {}) });
  const logs: Array<Record<string, unknown>> = [];
  let buffer = '';
  child.stdout?.on('data', (chunk) => {
    buffer += chunk;
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) logs.push(JSON.parse(line));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // A server that never says it is serving is stopped here: no caller holds it to stop it.
  await eventually(() => logs.some((l) => l.msg === 'twokey is serving'), 10_000).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw error;
  });
  const url = new URL(logs.find((l) => l.msg === 'twokey is serving')?.url as string);
  return { child, logs, port: Number(url.port), exited };
}
