/**
 * `npm run bench`: twokey's real server against a baseline fastify HTTPS server configured like
 * it, driven alternately by the same load in one run, case by case. Reports requests/s at
 * saturation, latency at a fixed arrival rate (open loop), errors, peak RSS and the event-loop
 * delay of large reviews, as medians over rounds with their spread, and the ratio of twokey to
 * the baseline. Prints a table and writes JSON. Every phase is bounded in time.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import type { JWK } from 'jose';
import { createCertificateAuthority, issueServingCertificate } from '../src/dev/certificates.ts';
import { generateIssuerKey } from '../src/keys/signing.ts';
import { fixedRate, percentile } from './rate-probe.ts';
import { approvals, CLUSTER, deployment, ISSUER, reviewBody, withAnnotations } from './reviews.ts';

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '20' },
    rate: { type: 'string', default: '1000' },
    large: { type: 'string', default: '30' },
    cases: { type: 'string' },
    out: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    'node-options': { type: 'string', default: '' },
  },
});
const smoke = flags.smoke ?? false;
const durationS = smoke ? 0.5 : Number(flags.duration);
const rounds = smoke ? 1 : Number(flags.rounds);
const connections = Number(flags.connections);
const rate = smoke ? 200 : Number(flags.rate);
const largeRequests = smoke ? 2 : Number(flags.large);
const SERVER_NAME = 'twokey.bench.svc';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Target = 'baseline' | 'twokey';
interface Case {
  readonly name: string;
  readonly description: string;
  readonly large?: boolean;
  /** The body of the i-th request. */
  readonly body: (i: number) => string;
  readonly expect: 'allowed' | 'denied';
}

// ---- setup: keys, policy, certificate, reviews ----

const log = (line: string) => process.stderr.write(`${line}\n`);
const dir = mkdtempSync(join(tmpdir(), 'twokey-bench-'));
const issuer = await generateIssuerKey('EdDSA', 'bench-1');
const ca = await createCertificateAuthority('twokey bench CA', 1);
const serving = await issueServingCertificate(ca, { dns: [SERVER_NAME], ips: ['127.0.0.1'] }, 1);
writeFileSync(join(dir, 'tls.crt'), serving.certPem);
writeFileSync(join(dir, 'tls.key'), serving.keyPem);
writeFileSync(join(dir, 'jwks.json'), JSON.stringify(issuer.jwks));
writeFileSync(
  join(dir, 'policy.yaml'),
  `cluster: ${CLUSTER}\nissuers:\n  - issuer: ${ISSUER}\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\n`,
);
const key = issuer.privateJwk as JWK;

const critical = deployment('payments');
const twoApprovals = await approvals(key, critical, ['bob@example.com', 'carol@example.com']);
const oneApproval = await approvals(key, critical, ['bob@example.com']);
const approvedBody = reviewBody('CREATE', withAnnotations(critical, twoApprovals));
const reviewBytes = Buffer.byteLength(approvedBody);

// Cold: every request carries approvals the server has not seen. The pool is sized for the
// fastest plausible run; a wrap would make later requests warm, so it is counted.
const coldPoolSize = smoke ? 200 : Math.ceil(6000 * durationS);
log(`minting ${coldPoolSize * 2} approvals for the cold-cache case...`);
const coldTemplate = reviewBody(
  'CREATE',
  withAnnotations(critical, { 'approval.twokey.dev/bob': '@@BOB@@', 'approval.twokey.dev/carol': '@@CAROL@@' }),
);
const coldPool: Array<[string, string]> = [];
for (let i = 0; i < coldPoolSize; i += 1) {
  const pair = await approvals(key, critical, ['bob@example.com', 'carol@example.com'], `CHG${100000 + i}`);
  coldPool.push([pair['approval.twokey.dev/bob'] as string, pair['approval.twokey.dev/carol'] as string]);
}
let coldCursor = 0;
let coldWraps = 0;
const coldBody = () => {
  if (coldCursor === coldPool.length) {
    coldCursor = 0;
    coldWraps += 1;
  }
  const [bob, carol] = coldPool[coldCursor++] as [string, string];
  return coldTemplate.replace('@@BOB@@', bob).replace('@@CAROL@@', carol);
};

const bigCase = async (megabytes: number): Promise<Case> => {
  const big = deployment('payments', megabytes * 1024 * 1024);
  const body = reviewBody('CREATE', withAnnotations(big, await approvals(key, big, ['bob@example.com', 'carol@example.com'])));
  return {
    name: `large-${megabytes}mb`,
    description: `CREATE of a critical ${megabytes} MB Deployment with two approvals, one request at a time`,
    large: true,
    body: () => body,
    expect: 'allowed',
  };
};

const passThrough = reviewBody('CREATE', deployment('team-a'));
const refused = reviewBody('CREATE', withAnnotations(critical, oneApproval));
const metadataOnly = reviewBody(
  'UPDATE',
  withAnnotations(critical, { ...twoApprovals, 'example.com/note': 'rotated on-call' }),
  withAnnotations(critical, twoApprovals),
);
const allCases: Case[] = [
  {
    name: 'pass-through',
    description: 'CREATE of a Deployment in a namespace that is not critical',
    body: () => passThrough,
    expect: 'allowed',
  },
  {
    name: 'approved-warm',
    description: 'CREATE of a critical Deployment with two valid approvals, the same tokens each time',
    body: () => approvedBody,
    expect: 'allowed',
  },
  {
    name: 'approved-cold',
    description: 'CREATE of a critical Deployment with two valid approvals never seen before',
    body: coldBody,
    expect: 'allowed',
  },
  {
    name: 'one-approval',
    description: 'CREATE of a critical Deployment with one approval (refused)',
    body: () => refused,
    expect: 'denied',
  },
  {
    name: 'metadata-only',
    description: 'UPDATE of a critical Deployment that changes only an annotation',
    body: () => metadataOnly,
    expect: 'allowed',
  },
  await bigCase(1),
  await bigCase(3),
];
const selected = flags.cases ? new Set(flags.cases.split(',')) : undefined;
const cases = allCases.filter((c) => !selected || selected.has(c.name));

// ---- servers ----

interface Server {
  readonly target: Target;
  readonly child: ChildProcess;
  readonly port: number;
}

async function startServer(target: Target): Promise<Server> {
  // Both servers run with the same V8 flags, e.g. --node-options='--max-semi-space-size=2'.
  const execArgv = (flags['node-options'] ?? '').split(/\s+/).filter(Boolean);
  const child = fork(join(ROOT, 'bench', 'server.mjs'), [target, dir], { execArgv, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${target} server did not start`)), 20_000);
    child.once('message', (message: { port?: number }) => {
      clearTimeout(timer);
      if (message.port) resolve(message.port);
    });
    child.once('exit', (code) => reject(new Error(`${target} server exited with ${code}`)));
  });
  return { target, child, port };
}

function rssMb(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(status);
  return match ? Number(match[1]) / 1024 : Number.NaN;
}

/** CPU time (user + system) the process has used so far, in microseconds. */
function cpuMicros(pid: number): number {
  // /proc/<pid>/stat: fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised name.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_SECOND;
}
const CLOCK_TICKS_PER_SECOND = 100;

function eventLoop(server: Server): Promise<{ maxMs: number; p99Ms: number }> {
  return new Promise((resolve) => {
    server.child.once('message', (message: { eventLoop: { maxMs: number; p99Ms: number } }) => resolve(message.eventLoop));
    server.child.send('eld');
  });
}

const agentFor = () => new Agent({ keepAlive: true, maxSockets: 1, ca: ca.certPem, servername: SERVER_NAME });

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
async function checkVerdict(server: Server, c: Case): Promise<void> {
  const agent = agentFor();
  const { status, text } = await post(server, agent, c.body(0));
  agent.destroy();
  const allowed = status === 200 && (JSON.parse(text) as { response: { allowed: boolean } }).response.allowed;
  const expected = server.target === 'baseline' || c.expect === 'allowed';
  if (allowed !== expected) throw new Error(`${server.target} answered ${c.name} wrongly: HTTP ${status} ${text.slice(0, 300)}`);
}

// ---- measurements ----

interface Sample {
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

/** Closed-loop load at saturation: `connections` clients, each sending as soon as it is answered. */
function saturate(server: Server, c: Case, seconds: number): Promise<autocannon.Result> {
  return autocannon({
    url: `https://127.0.0.1:${server.port}/validate?timeout=10s`,
    connections,
    duration: seconds,
    timeout: 10,
    headers: { 'content-type': 'application/json', accept: 'application/json, */*' },
    servername: SERVER_NAME,
    tlsOptions: { ca: ca.certPem },
    requests: [{ method: 'POST', setupRequest: (req: autocannon.Request) => ({ ...req, body: c.body(0) }) }],
  });
}

async function measure(server: Server, c: Case): Promise<Sample> {
  await checkVerdict(server, c);
  let peak = rssMb(server.child.pid as number);
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssMb(server.child.pid as number));
  }, 50);
  try {
    if (c.large) {
      server.child.send('eld-reset');
      const agent = agentFor();
      const latencies: number[] = [];
      let errors = 0;
      for (let i = 0; i < largeRequests; i += 1) {
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
        peakRssMb: peak,
        eventLoopMaxMs: loop.maxMs,
      };
    }
    // Warm up (JIT, TLS sessions, caches sized) before anything is recorded.
    await saturate(server, c, Math.min(1, durationS / 2));
    const cpuBefore = cpuMicros(server.child.pid as number);
    const saturation = await saturate(server, c, durationS);
    const cpuUsed = cpuMicros(server.child.pid as number) - cpuBefore;
    const atRate = await fixedRate({
      url: `https://127.0.0.1:${server.port}/validate`,
      ca: ca.certPem,
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
      peakRssMb: peak,
    };
  } finally {
    clearInterval(sampler);
  }
}

// ---- the run ----

log(`starting servers (reviews of ${(reviewBytes / 1024).toFixed(1)} KB)...`);
// The 8-20 KB cases share long-lived servers; each large case gets fresh ones, so the memory a
// 3 MB review leaves behind (V8 keeps its grown heap) does not count against the small cases.
const servers: Record<Target, Server> = { baseline: await startServer('baseline'), twokey: await startServer('twokey') };
const samples: Record<string, Record<Target, Sample[]>> = {};
const started = Date.now();
try {
  for (let round = 0; round < rounds; round += 1) {
    for (const c of cases) {
      // Alternate who goes first, so drift in the machine's load does not favour one side.
      const order: Target[] = round % 2 === 0 ? ['baseline', 'twokey'] : ['twokey', 'baseline'];
      for (const target of order) {
        log(`round ${round + 1}/${rounds}  ${c.name.padEnd(14)} ${target}`);
        samples[c.name] ??= { baseline: [], twokey: [] };
        const server = c.large ? await startServer(target) : servers[target];
        try {
          samples[c.name]?.[target].push(await measure(server, c));
        } finally {
          if (c.large) server.child.kill();
        }
      }
    }
  }
} finally {
  for (const server of Object.values(servers)) server.child.kill();
  rmSync(dir, { recursive: true, force: true });
}

// ---- report ----

const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
type Summary = { median: number; min: number; max: number };
const summarize = (xs: Array<number | undefined>): Summary | undefined => {
  const values = xs.filter((x): x is number => typeof x === 'number' && !Number.isNaN(x));
  return values.length ? { median: median(values), min: Math.min(...values), max: Math.max(...values) } : undefined;
};

const report = cases.map((c) => {
  const per = samples[c.name] as Record<Target, Sample[]>;
  const side = (target: Target) => ({
    rps: summarize(per[target].map((s) => s.rps)),
    cpuUs: summarize(per[target].map((s) => s.cpuUsPerReview)),
    p50Ms: summarize(per[target].map((s) => s.p50Ms)),
    p99Ms: summarize(per[target].map((s) => s.p99Ms)),
    errors: per[target].reduce((n, s) => n + (s.saturationErrors ?? 0) + (s.rateErrors ?? 0), 0),
    peakRssMb: summarize(per[target].map((s) => s.peakRssMb)),
    eventLoopMaxMs: summarize(per[target].map((s) => s.eventLoopMaxMs)),
  });
  const baseline = side('baseline');
  const twokey = side('twokey');
  const ratios = per.twokey.map((s, i) => (s.rps && per.baseline[i]?.rps ? s.rps / (per.baseline[i]?.rps as number) : undefined));
  return { case: c.name, description: c.description, large: Boolean(c.large), baseline, twokey, ratio: summarize(ratios) };
});

const fmt = (s: Summary | undefined, digits = 0) =>
  s ? `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}-${s.max.toFixed(digits)})` : '-';
const rows = [
  [
    'case',
    'server',
    'req/s saturation',
    'CPU µs/review',
    `p50 ms @${rate}/s`,
    `p99 ms @${rate}/s`,
    'errors',
    'peak RSS MB',
    'loop max ms',
    'twokey/baseline',
  ],
];
for (const r of report) {
  for (const target of ['baseline', 'twokey'] as const) {
    const s = r[target];
    rows.push([
      target === 'baseline' ? r.case : '',
      target,
      r.large ? '(one at a time)' : fmt(s.rps),
      fmt(s.cpuUs),
      fmt(s.p50Ms, 2),
      fmt(s.p99Ms, 2),
      String(s.errors),
      fmt(s.peakRssMb),
      r.large ? fmt(s.eventLoopMaxMs, 1) : '',
      target === 'twokey' && !r.large ? fmt(r.ratio, 2) : '',
    ]);
  }
}
const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length))) ?? [];
for (const row of rows)
  process.stdout.write(
    `${row
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()}\n`,
  );

const byCase = Object.fromEntries(report.map((r) => [r.case, r]));
/** A target, judged only when one of the cases it is about ran. */
const target = (name: string, ok: boolean | undefined, detail: string, about: readonly string[]) => ({
  target: name,
  met: ok ?? false,
  detail,
  judged: about.some((c) => c in byCase),
});
const smallCases = ['pass-through', 'approved-warm', 'approved-cold', 'one-approval', 'metadata-only'];
const largeCases = ['large-1mb', 'large-3mb'];
const ratioOf = (name: string) => byCase[name]?.ratio?.median;
const p99Of = (name: string) => byCase[name]?.twokey.p99Ms?.median;
const targets = [
  target('approved-warm >= 0.60 of baseline req/s', (ratioOf('approved-warm') ?? 0) >= 0.6, `${ratioOf('approved-warm')?.toFixed(2)}`, [
    'approved-warm',
  ]),
  target('approved-cold >= 0.35 of baseline req/s', (ratioOf('approved-cold') ?? 0) >= 0.35, `${ratioOf('approved-cold')?.toFixed(2)}`, [
    'approved-cold',
  ]),
  ...['pass-through', 'one-approval', 'metadata-only'].map((name) =>
    target(`${name} >= 0.70 of baseline req/s`, (ratioOf(name) ?? 0) >= 0.7, `${ratioOf(name)?.toFixed(2)}`, [name]),
  ),
  ...smallCases.map((name) =>
    target(`${name} p99 <= 3 ms at ${rate} req/s`, (p99Of(name) ?? Infinity) <= 3, `${p99Of(name)?.toFixed(2)} ms`, [name]),
  ),
  target(
    '0 errors',
    report.every((r) => r.twokey.errors === 0),
    `${report.reduce((n, r) => n + r.twokey.errors, 0)} errors`,
    [...smallCases, ...largeCases],
  ),
  target('3 MB review p99 <= 100 ms', (p99Of('large-3mb') ?? Infinity) <= 100, `${p99Of('large-3mb')?.toFixed(1)} ms`, ['large-3mb']),
  target(
    'event-loop delay never above 50 ms',
    report.filter((r) => r.large).every((r) => (r.twokey.eventLoopMaxMs?.max ?? Infinity) <= 50),
    report
      .filter((r) => r.large)
      .map((r) => `${r.case} ${r.twokey.eventLoopMaxMs?.max.toFixed(1)} ms`)
      .join(', '),
    largeCases,
  ),
  target(
    'peak RSS <= 128 MB for the 8-20 KB cases',
    report.filter((r) => !r.large).every((r) => (r.twokey.peakRssMb?.max ?? Infinity) <= 128),
    `${Math.max(...report.filter((r) => !r.large).map((r) => r.twokey.peakRssMb?.max ?? 0)).toFixed(0)} MB`,
    smallCases,
  ),
];
process.stdout.write('\n');
for (const t of targets.filter((t) => t.judged)) process.stdout.write(`${t.met ? 'met    ' : 'NOT MET'}  ${t.target}: ${t.detail}\n`);

const result = {
  date: new Date().toISOString(),
  machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
  settings: {
    durationS,
    rounds,
    connections,
    rate,
    largeRequests,
    reviewBytes,
    coldPoolSize,
    coldWraps,
    nodeOptions: flags['node-options'],
  },
  elapsedS: Math.round((Date.now() - started) / 1000),
  cases: report,
  targets,
};
const out = flags.out ?? join(ROOT, 'bench', 'results', `bench-${result.date.replace(/[:.]/g, '-')}.json`);
mkdirSync(join(out, '..'), { recursive: true });
writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
log(`wrote ${out}`);
