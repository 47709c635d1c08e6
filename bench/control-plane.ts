/**
 * `npm run bench:cluster`: latency as kube-apiserver sees it. On the local control plane (built by
 * `npm run cluster:build`) with twokey installed by the chart, a bounded run of server-side dry-run
 * applies from a few concurrent clients, once with the webhook registered and once without, then
 * `kubectl apply --dry-run=server` timed both ways. Reports kube-apiserver's own
 * apiserver_admission_webhook_admission_duration_seconds (its buckets start at 5 ms, so it says
 * which share of calls took less than that), the request latency the clients measured (the
 * difference between the two runs is what the webhook adds), and twokey's own decision time.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { type ControlPlane, httpsGet, startControlPlane } from '../test/control-plane/cluster.ts';
import { approvalAnnotations, approveArgs, deployment, digestIn, runCommand, TWOKEY_BIN } from '../test/control-plane/commands.ts';
import { type InstalledTwokey, installTwokey } from '../test/control-plane/twokey.ts';

const run = promisify(execFile);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 2000);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 4);
const KUBECTL_RUNS = Number(process.env.BENCH_KUBECTL_RUNS ?? 20);
/** Every phase stops by itself after this long, whatever it has done. */
const PHASE_LIMIT_MS = 180_000;

const log = (line: string) => process.stderr.write(`${line}\n`);

interface Target {
  readonly kind: 'approved deploy' | 'unapproved deploy' | 'metadata only' | 'not critical';
  readonly path: string;
  readonly body: string;
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

/** Sum of the counts and buckets of a Prometheus histogram whose series match `filter`. */
function histogram(text: string, name: string, filter: (labels: string) => boolean) {
  const buckets = new Map<string, number>();
  let count = 0;
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}_(bucket|count|sum)\\{([^}]*)\\} (\\S+)$`).exec(line);
    if (!match || !filter(match[2] as string)) continue;
    const value = Number(match[3]);
    if (match[1] === 'count') count += value;
    else if (match[1] === 'sum') sum += value;
    else {
      const le = /le="([^"]+)"/.exec(match[2] as string)?.[1] as string;
      buckets.set(le, (buckets.get(le) ?? 0) + value);
    }
  }
  return { buckets, count, sum };
}

function difference(after: ReturnType<typeof histogram>, before: ReturnType<typeof histogram>) {
  const buckets = new Map([...after.buckets].map(([le, value]) => [le, value - (before.buckets.get(le) ?? 0)]));
  return { buckets, count: after.count - before.count, sum: after.sum - before.sum };
}

async function apiserverMetrics(plane: ControlPlane): Promise<string> {
  return (await httpsGet(`${plane.server}/metrics`, join(plane.stateDir, 'pki'))).body;
}

async function twokeyMetrics(installed: InstalledTwokey): Promise<string> {
  const ca = readFileSync(join(installed.dir, 'ca.crt'));
  return new Promise((resolve, reject) => {
    request(`${installed.url}/metrics`, { ca }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on('end', () => resolve(body));
    })
      .on('error', reject)
      .end();
  });
}

/** REQUESTS dry-run applies over CLIENTS keep-alive connections, round-robin over the targets. */
async function load(plane: ControlPlane, targets: readonly Target[]): Promise<Map<string, number[]>> {
  const pki = join(plane.stateDir, 'pki');
  const agent = new Agent({
    keepAlive: true,
    maxSockets: CLIENTS,
    ca: readFileSync(join(pki, 'ca.crt')),
    cert: readFileSync(join(pki, 'admin.crt')),
    key: readFileSync(join(pki, 'admin.key')),
  });
  const times = new Map<string, number[]>(targets.map((t) => [t.kind, []]));
  let next = 0;
  const deadline = Date.now() + PHASE_LIMIT_MS;
  const client = async () => {
    while (next < REQUESTS && Date.now() < deadline) {
      const target = targets[next % targets.length] as Target;
      next += 1;
      const started = performance.now();
      await new Promise<void>((resolve, reject) => {
        const req = request(
          `${plane.server}${target.path}?dryRun=All&fieldManager=bench&force=true`,
          { method: 'PATCH', agent, headers: { 'content-type': 'application/apply-patch+yaml', accept: 'application/json' } },
          (res) => {
            res.resume();
            res.on('end', () => resolve());
          },
        );
        req.on('error', reject);
        req.end(target.body);
      });
      times.get(target.kind)?.push(performance.now() - started);
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, client));
  agent.destroy();
  return times;
}

async function timeKubectl(plane: ControlPlane, file: string): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < KUBECTL_RUNS; i += 1) {
    const started = performance.now();
    await run(plane.binaries.kubectl, ['--kubeconfig', plane.kubeconfig, 'apply', '--dry-run=server', '-f', file]).catch(() => undefined);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  const stateDir = await mkdtemp(join(tmpdir(), 'twokey-bench-cluster-'));
  const plane = await startControlPlane({ stateDir, log, lifetime: 'parent' });
  try {
    const installed = await installTwokey(plane, { log, lifetime: 'parent' });
    const kubectl = (...args: string[]) => runCommand(plane.kubeconfig, plane.binaries.kubectl, args);
    await kubectl('create', 'namespace', 'payments');
    await kubectl('label', 'namespace', 'payments', 'twokey.dev/critical=true');
    await kubectl('create', 'namespace', 'sandbox');
    const file = join(stateDir, 'api.yaml');
    await writeFile(file, stringify(deployment({ namespace: 'payments' })));
    const digest = digestIn((await kubectl('apply', '--dry-run=server', '-f', file)).stderr);
    const tokens: Record<string, string> = {};
    for (const approver of ['bob', 'carol']) {
      const args = approveArgs(installed.issuerKey, installed.issuer, installed.cluster, { approver, digest, file });
      tokens[approver] = (await runCommand(plane.kubeconfig, process.execPath, [TWOKEY_BIN, ...args])).stdout.trim();
    }
    const approved = deployment({ namespace: 'payments', annotations: approvalAnnotations(tokens) });
    const approvedFile = join(stateDir, 'api-approved.yaml');
    await writeFile(approvedFile, stringify(approved));
    const applied = await kubectl('apply', '-f', approvedFile);
    if (applied.code !== 0) throw new Error(applied.stderr);

    const path = (namespace: string) => `/apis/apps/v1/namespaces/${namespace}/deployments/api`;
    const targets: Target[] = [
      { kind: 'approved deploy', path: path('payments'), body: JSON.stringify(approved) },
      {
        kind: 'unapproved deploy',
        path: path('payments'),
        body: JSON.stringify(deployment({ namespace: 'payments', image: 'registry.example/api:2.0' })),
      },
      {
        kind: 'metadata only',
        path: path('payments'),
        body: JSON.stringify(deployment({ namespace: 'payments', annotations: { ...approvalAnnotations(tokens), note: 'metadata only' } })),
      },
      { kind: 'not critical', path: path('sandbox'), body: JSON.stringify(deployment({ namespace: 'sandbox' })) },
    ];

    const isTwokey = (labels: string) => /name="[a-z-]+\.twokey\.dev"/.test(labels);
    log(`${REQUESTS} dry-run applies from ${CLIENTS} clients, with the webhook registered`);
    const apiBefore = await apiserverMetrics(plane);
    const twokeyBefore = await twokeyMetrics(installed);
    const withWebhook = await load(plane, targets);
    const apiAfter = await apiserverMetrics(plane);
    const twokeyAfter = await twokeyMetrics(installed);
    const kubectlWith = await timeKubectl(plane, approvedFile);

    log('the same without the webhook');
    await kubectl('delete', 'validatingwebhookconfiguration', 'twokey');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const withoutWebhook = await load(plane, targets);
    const kubectlWithout = await timeKubectl(plane, approvedFile);

    const webhook = difference(
      histogram(apiAfter, 'apiserver_admission_webhook_admission_duration_seconds', isTwokey),
      histogram(apiBefore, 'apiserver_admission_webhook_admission_duration_seconds', isTwokey),
    );
    const decision = difference(
      histogram(twokeyAfter, 'twokey_admission_decision_seconds', () => true),
      histogram(twokeyBefore, 'twokey_admission_decision_seconds', () => true),
    );
    const share = (h: ReturnType<typeof difference>, le: string) =>
      `${((100 * (h.buckets.get(le) ?? 0)) / Math.max(1, h.count)).toFixed(1)}%`;

    const print = (line = '') => process.stdout.write(`${line}\n`);
    print(
      `Control plane ${plane.binaries.dir.split('/').at(-1)}, ${REQUESTS} server-side dry-run applies per run from ${CLIENTS} clients.`,
    );
    print();
    print('| request | calls | p50 with webhook | p99 with webhook | p50 without | p99 without |');
    print('| --- | --- | --- | --- | --- | --- |');
    for (const target of targets) {
      const a = [...(withWebhook.get(target.kind) ?? [])].sort((x, y) => x - y);
      const b = [...(withoutWebhook.get(target.kind) ?? [])].sort((x, y) => x - y);
      print(
        `| ${target.kind} | ${a.length} | ${ms(quantile(a, 0.5))} | ${ms(quantile(a, 0.99))} | ${ms(quantile(b, 0.5))} | ${ms(quantile(b, 0.99))} |`,
      );
    }
    print();
    print(
      `kube-apiserver's apiserver_admission_webhook_admission_duration_seconds for twokey's webhooks: ${webhook.count} calls, mean ${ms((1000 * webhook.sum) / Math.max(1, webhook.count))}, ${share(webhook, '0.005')} under 5 ms, ${share(webhook, '0.025')} under 25 ms.`,
    );
    print(
      `twokey_admission_decision_seconds: ${decision.count} reviews, mean ${ms((1000 * decision.sum) / Math.max(1, decision.count))}, ${share(decision, '0.001')} under 1 ms, ${share(decision, '0.0025')} under 2.5 ms.`,
    );
    print(
      `kubectl apply --dry-run=server of the approved Deployment (${KUBECTL_RUNS} runs): median ${ms(quantile(kubectlWith, 0.5))} with the webhook, ${ms(quantile(kubectlWithout, 0.5))} without; p90 ${ms(quantile(kubectlWith, 0.9))} and ${ms(quantile(kubectlWithout, 0.9))}.`,
    );
  } finally {
    await plane.stop();
    await rm(stateDir, { recursive: true, force: true });
  }
}

await main();
