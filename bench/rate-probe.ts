/**
 * Latency at a fixed arrival rate, measured open-loop: requests are sent on schedule whether or
 * not earlier ones have answered, and each latency runs from the scheduled send time to the end
 * of the response. A slow server therefore shows up as queueing in the latency, instead of
 * quietly lowering the rate (coordinated omission).
 */
import { Agent, request } from 'node:https';

export interface RateResult {
  readonly sent: number;
  readonly completed: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly achievedRate: number;
}

export interface RateOptions {
  readonly url: string;
  readonly ca: string;
  readonly servername: string;
  readonly rate: number;
  readonly durationMs: number;
  /** Sent at the rate before `durationMs` starts, not recorded: opens connections, warms the JIT. */
  readonly warmupMs?: number;
  /** Body for the i-th request. */
  readonly body: (i: number) => string;
  readonly maxSockets?: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

export async function fixedRate(options: RateOptions): Promise<RateResult> {
  const url = new URL(options.url);
  const agent = new Agent({ keepAlive: true, maxSockets: options.maxSockets ?? 64, ca: options.ca, servername: options.servername });
  const latencies: number[] = [];
  let errors = 0;
  let sent = 0;
  const interval = 1000 / options.rate;
  const warmupMs = options.warmupMs ?? 0;
  const totalMs = warmupMs + options.durationMs;
  const started = performance.now();
  const pending: Array<Promise<void>> = [];

  const send = (i: number, scheduled: number) =>
    new Promise<void>((resolve) => {
      const payload = options.body(i);
      const req = request(
        {
          agent,
          host: url.hostname,
          port: url.port,
          path: `${url.pathname}?timeout=10s`,
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json, */*', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          res.resume();
          res.on('end', () => {
            const recorded = scheduled - started >= warmupMs;
            if (res.statusCode !== 200) errors += 1;
            else if (recorded) latencies.push(performance.now() - scheduled);
            resolve();
          });
        },
      );
      req.on('error', () => {
        errors += 1;
        resolve();
      });
      req.end(payload);
    });

  // A timer loop that catches up: every request due by now is sent, each stamped with its due time.
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      while (sent * interval <= now - started && sent * interval < totalMs) {
        pending.push(send(sent, started + sent * interval));
        sent += 1;
      }
      if (sent * interval >= totalMs) done();
      else setTimeout(tick, 1);
    };
    tick();
  });
  await Promise.all(pending);
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const elapsed = (performance.now() - started) / 1000;
  return {
    sent,
    completed: latencies.length,
    errors,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: latencies.at(-1) ?? Number.NaN,
    achievedRate: sent / Math.max(elapsed, totalMs / 1000),
  };
}
