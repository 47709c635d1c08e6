/**
 * `twokey serve` as production runs it, against clients that open connections and stall:
 * kube-apiserver's reviews must still be answered within the webhook timeout the chart sets (5 s).
 */
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callWebhook, type WebhookOutcome } from '../../src/kubernetes/webhook-client.ts';
import { type Served, serveCli } from '../support/cli.ts';
import { Clients } from '../support/clients.ts';
import { endpointOf, type ServerFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

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

/** One review as kube-apiserver sends it, timed; a critical Deployment without approvals is refused. */
async function timedReview(server: Served): Promise<{ outcome: WebhookOutcome; ms: number }> {
  const started = performance.now();
  const outcome = await callWebhook(
    { ...endpointOf(server, files), timeoutSeconds: WEBHOOK_TIMEOUT_MS / 1000 },
    admissionReview({ operation: 'CREATE', object: deployment() }),
  );
  return { outcome, ms: performance.now() - started };
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
});
