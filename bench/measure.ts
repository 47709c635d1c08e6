/**
 * One case on one server: its verdict checked first, then requests/s and CPU per review at
 * saturation and latency at a fixed arrival rate, or, for a large case, latency and event-loop
 * delay one request at a time; peak RSS throughout.
 */
import { Agent, request } from 'node:https';
import autocannon from 'autocannon';
import type { Case } from './cases.ts';
import type { BenchOptions } from './options.ts';
import { fixedRate, percentile } from './rate-probe.ts';
import { cpuMicros, eventLoop, rssMb, type Server } from './servers.ts';
import { SERVER_NAME } from './setup.ts';

export interface Sample {
  rps?: number;
  /** Server CPU time per review at saturation: steadier than req/s when the load generator shares the cores. */
  cpuUsPerReview?: number;
  saturationErrors?: number;
  p50Ms?: number;
  p99Ms?: number;
  rateErrors?: number;
  achievedRate?: number;
  peakRssMb: number;
  eventLoopMaxMs?: number;
}

/** How the servers are reached and loaded. */
export interface Load {
  readonly options: BenchOptions;
  /** The CA the servers' certificate chains to. */
  readonly caPem: string;
}

const agentFor = (load: Load) => new Agent({ keepAlive: true, maxSockets: 1, ca: load.caPem, servername: SERVER_NAME });

function post(server: Server, agent: Agent, body: string): Promise<{ status: number; text: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: '127.0.0.1',
        port: server.port,
        path: '/validate?timeout=10s',
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, ms: performance.now() - started }));
      },
    );
    req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Checks the server gives the verdict the case expects, so a benchmark of wrong answers cannot pass. */
async function checkVerdict(server: Server, c: Case, load: Load): Promise<void> {
  const agent = agentFor(load);
  const { status, text } = await post(server, agent, c.body(0));
  agent.destroy();
  const allowed = status === 200 && (JSON.parse(text) as { response: { allowed: boolean } }).response.allowed;
  const expected = !server.judges || c.expect === 'allowed';
  if (allowed !== expected) throw new Error(`${server.target} answered ${c.name} wrongly: HTTP ${status} ${text.slice(0, 300)}`);
}

/** Closed-loop load at saturation: `connections` clients, each sending as soon as it is answered. */
function saturate(server: Server, c: Case, seconds: number, load: Load): Promise<autocannon.Result> {
  return autocannon({
    url: `https://127.0.0.1:${server.port}/validate?timeout=10s`,
    connections: load.options.connections,
    duration: seconds,
    timeout: 10,
    headers: { 'content-type': 'application/json', accept: 'application/json, */*' },
    servername: SERVER_NAME,
    tlsOptions: { ca: load.caPem },
    requests: [{ method: 'POST', setupRequest: (req: autocannon.Request) => ({ ...req, body: c.body(0) }) }],
  });
}

/** A large case: requests one at a time, their latency, and the event-loop delay they caused. */
async function measureLarge(server: Server, c: Case, load: Load, peak: () => number): Promise<Sample> {
  server.child.send('eld-reset');
  const agent = agentFor(load);
  const latencies: number[] = [];
  let errors = 0;
  for (let i = 0; i < load.options.largeRequests; i += 1) {
    const { status, ms } = await post(server, agent, c.body(i));
    if (status === 200) latencies.push(ms);
    else errors += 1;
  }
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const loop = await eventLoop(server);
  return {
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    rateErrors: errors,
    peakRssMb: peak(),
    eventLoopMaxMs: loop.maxMs,
  };
}

/** A small case: saturation, then latency at the fixed rate. */
async function measureSmall(server: Server, c: Case, load: Load, peak: () => number): Promise<Sample> {
  const { durationS, rate } = load.options;
  // Warm up (JIT, TLS sessions, caches sized) before anything is recorded.
  await saturate(server, c, Math.min(1, durationS / 2), load);
  const cpuBefore = cpuMicros(server.child.pid as number);
  const saturation = await saturate(server, c, durationS, load);
  const cpuUsed = cpuMicros(server.child.pid as number) - cpuBefore;
  const atRate = await fixedRate({
    url: `https://127.0.0.1:${server.port}/validate`,
    ca: load.caPem,
    servername: SERVER_NAME,
    rate,
    durationMs: durationS * 1000,
    warmupMs: 500,
    body: c.body,
  });
  return {
    rps: saturation.requests.average,
    cpuUsPerReview: saturation.requests.total ? cpuUsed / saturation.requests.total : undefined,
    saturationErrors: saturation.errors + saturation.timeouts + saturation.non2xx,
    p50Ms: atRate.p50Ms,
    p99Ms: atRate.p99Ms,
    rateErrors: atRate.errors,
    achievedRate: atRate.achievedRate,
    peakRssMb: peak(),
  };
}

export async function measure(server: Server, c: Case, load: Load): Promise<Sample> {
  await checkVerdict(server, c, load);
  let peak = rssMb(server.child.pid as number);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(server.child.pid as number));
  }, 50);
  try {
    return await (c.large ? measureLarge : measureSmall)(server, c, load, () => peak);
  } finally {
    clearInterval(sampler);
  }
}
