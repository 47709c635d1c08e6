/**
 * `twokey serve` as production runs it, against clients that open connections or start uploads
 * and stall: kube-apiserver's reviews must still be answered within the webhook timeout the chart
 * sets (5 s), and the process must stay under the chart's memory limit (384 MiB).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callWebhook, type WebhookOutcome } from '../../src/kubernetes/webhook-client.ts';
import { DEFAULT_BODY_LIMIT } from '../../src/server/app.ts';
import { type Served, serveCli } from '../support/cli.ts';
import { Clients, MIB } from '../support/clients.ts';
import { endpointOf, type ServerFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

const CHART_MEMORY_LIMIT = 384 * MIB;
const WEBHOOK_TIMEOUT_MS = 5000;

let files: ServerFiles;
let served: Served | undefined;
let clients: Clients | undefined;

beforeAll(async () => {
  files = await serverFiles(await makeIssuer());
});
afterEach(() => {
  clients?.destroyAll();
  served?.child.kill('SIGKILL');
  served = undefined;
});
afterAll(async () => {
  await files.cleanup();
});

/** The server with the chart's Node options (charts/twokey/values.yaml, nodeOptions). */
async function serve(): Promise<{ server: Served; clients: Clients }> {
  served = await serveCli(['--config', files.policy, '--tls-cert', files.cert, '--tls-key', files.key], undefined, {
    NODE_OPTIONS: '--max-semi-space-size=4',
  });
  clients = new Clients(served.port, files.ca.certPem);
  return { server: served, clients };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One review as kube-apiserver sends it, timed; a critical Deployment without approvals is refused. */
async function timedReview(server: Served): Promise<{ outcome: WebhookOutcome; ms: number }> {
  const started = performance.now();
  const outcome = await callWebhook(
    { ...endpointOf(server, files), timeoutSeconds: WEBHOOK_TIMEOUT_MS / 1000 },
    admissionReview({ operation: 'CREATE', object: deployment() }),
  );
  return { outcome, ms: performance.now() - started };
}

function residentBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(line?.match(/\d+/)?.[0] ?? 0) * 1024;
}

describe('hostile clients against twokey serve', () => {
  it('answers a review within the webhook timeout while 1,100 connections never start TLS', async () => {
    const { server, clients } = await serve();
    // Eleven pods' worth, more than the server's connection limit in total.
    for (let i = 2; i <= 12; i += 1) await clients.idle(`127.0.0.${i}`, 100);
    for (let i = 0; i < 3; i += 1) {
      const { outcome, ms } = await timedReview(server);
      expect(outcome.kind, JSON.stringify(outcome)).toBe('denied');
      expect(ms).toBeLessThan(WEBHOOK_TIMEOUT_MS);
    }
  });

  it('stays under the chart memory limit and answers reviews while uploads stall', async () => {
    const { server, clients } = await serve();
    const pid = server.child.pid as number;
    let peak = residentBytes(pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, residentBytes(pid));
    }, 50);
    try {
      const nearLimit = { declared: DEFAULT_BODY_LIMIT - 1, sent: DEFAULT_BODY_LIMIT - 1024 };
      const uploads = [
        // Two dozen bodies of 15 MiB, declared and chunked, all but the last bytes sent.
        ...Array.from({ length: 20 }, () => clients.upload('127.0.0.2', { declared: 15 * MIB, sent: 15 * MIB - 1024 })),
        ...Array.from({ length: 4 }, () => clients.upload('127.0.0.3', { sent: 15 * MIB })),
        // Bodies just under the limit: a dozen from one peer, and three from each of eight others.
        ...Array.from({ length: 12 }, () => clients.upload('127.0.0.4', nearLimit)),
        ...Array.from({ length: 24 }, (_, i) => clients.upload(`127.0.0.${5 + (i % 8)}`, nearLimit)),
      ];
      // Reviews are timed once the uploads are under way and stalled: that is the state an attacker keeps.
      await Promise.all(uploads.map((upload) => upload.started));
      await sleep(500);
      const until = performance.now() + 3000;
      while (performance.now() < until && peak < CHART_MEMORY_LIMIT) {
        const { outcome, ms } = await timedReview(server);
        expect(outcome.kind, JSON.stringify(outcome)).toBe('denied');
        expect(ms).toBeLessThan(WEBHOOK_TIMEOUT_MS);
        await sleep(250);
      }
      expect(peak).toBeLessThan(CHART_MEMORY_LIMIT);
    } finally {
      clearInterval(sampler);
    }
  });

  it('stays under the chart memory limit while reviews whose JSON grows twenty times its size arrive', async () => {
    const { server, clients } = await serve();
    const pid = server.child.pid as number;
    let peak = residentBytes(pid);
    const sampler = setInterval(() => {
      peak = Math.max(peak, residentBytes(pid));
    }, 50);
    /** A review kube-apiserver could never send: a critical Deployment whose spec is `count` empty objects. */
    const dense = (count: number) => {
      const review = admissionReview({ operation: 'CREATE', object: deployment() });
      const text = JSON.stringify(review).replace('"spec":{', `"spec":{"x":[${'{},'.repeat(count)}{}],`);
      return Buffer.from(text);
    };
    try {
      // About 6.5 MiB each, growing to about 140 MB each once parsed; from six addresses at once.
      const statuses = await Promise.all(Array.from({ length: 6 }, (_, i) => clients.post(`127.0.0.${2 + i}`, dense(2_200_000))));
      expect(statuses).toEqual(Array(6).fill(413));
      // Denser than real reviews, but within what the server may hold: judged in turn, and answered.
      const judged = await Promise.all(Array.from({ length: 6 }, (_, i) => clients.post(`127.0.0.${2 + i}`, dense(180_000))));
      expect(judged).toEqual(Array(6).fill(200));
      const { outcome, ms } = await timedReview(server);
      expect(outcome.kind, JSON.stringify(outcome)).toBe('denied');
      expect(ms).toBeLessThan(WEBHOOK_TIMEOUT_MS);
      expect(peak).toBeLessThan(CHART_MEMORY_LIMIT);
    } finally {
      clearInterval(sampler);
    }
  });
});
