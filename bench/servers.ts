/**
 * The two servers under load, each in a process of its own (bench/server.mjs), and what is read
 * of them from outside: memory and CPU time from /proc, event-loop delay over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export type Target = 'baseline' | 'twokey';

export interface Server {
  readonly target: Target;
  /** Whether it judges reviews (twokey, or another build of it), or admits everything (the plain baseline). */
  readonly judges: boolean;
  readonly child: ChildProcess;
  readonly port: number;
}

/**
 * Starts one server from the files in `dir`, with V8 flags such as '--max-semi-space-size=2' (the
 * same for both). With `against`, the baseline is twokey as built in that checkout.
 */
export async function startServer(target: Target, dir: string, nodeOptions: string, against?: string): Promise<Server> {
  const execArgv = nodeOptions.split(/\s+/).filter(Boolean);
  const [root, mode] = target === 'baseline' && against ? [against, 'twokey'] : [ROOT, target];
  const child = fork(join(root, 'bench', 'server.mjs'), [mode, dir], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${target} server did not start`)), 20_000);
    child.once('message', (message: { port?: number }) => {
      clearTimeout(timer);
      if (message.port) resolve(message.port);
    });
    child.once('exit', (code) => reject(new Error(`${target} server exited with ${code}`)));
  });
  return { target, judges: mode === 'twokey', child, port };
}

export function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU time (user + system) the process has used so far, in microseconds. */
export function cpuMicros(pid: number): number {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised name.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_SECOND;
}

/** The server's event-loop delay since its last reset. */
export function eventLoop(server: Server): Promise<{ maxMs: number; p99Ms: number }> {
  return new Promise((resolve) => {
    server.child.once('message', (message: { eventLoop: { maxMs: number; p99Ms: number } }) => resolve(message.eventLoop));
    server.child.send('eld');
  });
}
