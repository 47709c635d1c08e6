/**
 * Kubernetes Events about decisions: on refusals and approved admissions, never on dry runs,
 * folded when a client retries, and never slowing an answer when the API is slow.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventRecorder } from '../../src/cluster/events.ts';
import { connectCluster } from '../../src/cluster/integration.ts';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { KubeRest } from '../../src/cluster/rest.ts';
import { cannotJudgeVerdict } from '../../src/decision/verdict.ts';
import type { JsonObject } from '../../src/json.ts';
import { toAdmissionRequest } from '../../src/kubernetes/admission.ts';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { createLogger } from '../../src/server/logger.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { FakeKube } from '../support/fake-kube.ts';
import { endpointOf, eventually, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import {
  admissionReview,
  approve,
  deployment,
  type Issuer,
  makeIssuer,
  namespaceObject,
  type ReviewOptions,
  withAnnotations,
} from '../support/world.ts';

let kube: FakeKube;
let files: ServerFiles;
let issuer: Issuer;
let server: RunningServer;

beforeAll(async () => {
  kube = new FakeKube();
  await kube.start();
  issuer = await makeIssuer();
  files = await serverFiles(issuer);
  for (const ns of ['default', 'payments', 'slow']) kube.putNamespace(ns);
  const kubeconfig = await kube.writeKubeconfig(join(files.dir, 'kubeconfig'));
  server = await serveFiles(files, {
    cluster: (context) =>
      connectCluster(loadKubeConfig({ kubeconfig }), { ...context, eventRecorder: { updateIntervalMs: 0, queueLimit: 3 } }),
  });
  await eventually(async () => (await server.app.inject('/readyz')).statusCode === 200);
});
afterAll(async () => {
  await server.shutdown();
  await kube.stop();
  await files.cleanup();
});

const call = (options: ReviewOptions) => callWebhook(endpointOf(server, files), admissionReview(options));
const eventsFor = (name: string) => kube.events.filter((e) => (e.involvedObject as JsonObject).name === name);

describe('Events', () => {
  it('records a refusal on the object, as a Warning', async () => {
    const object = deployment({ name: 'refused-api', uid: 'uid-refused' });
    expect((await call({ operation: 'CREATE', object, user: 'alice' })).kind).toBe('denied');
    await eventually(() => eventsFor('refused-api').length === 1);
    const [event] = eventsFor('refused-api');
    expect(event).toMatchObject({
      type: 'Warning',
      reason: 'ChangeRefused',
      action: 'Deploy',
      involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'refused-api', namespace: 'payments', uid: 'uid-refused' },
      source: { component: 'twokey' },
      count: 1,
    });
    expect(String(event?.message)).toMatch(/^twokey: deploy of deployments.apps payments\/refused-api refused/);
    expect(event?.metadata).toMatchObject({ namespace: 'payments' });
  });

  it('records an admission that used approvals, naming the change and approvers', async () => {
    const api = deployment({ name: 'approved-api' });
    const now = Date.now() / 1000;
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com', now }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com', now }),
    });
    expect((await call({ operation: 'CREATE', object })).kind).toBe('allowed');
    await eventually(() => eventsFor('approved-api').length === 1);
    expect(eventsFor('approved-api')[0]).toMatchObject({ type: 'Normal', reason: 'ChangeApproved' });
    expect(String(eventsFor('approved-api')[0]?.message)).toContain('approved for CHG0031337 by bob@example.com, carol@example.com');
  });

  it('records a request gated as several actions, naming each aspect its digest', async () => {
    const old = deployment({ name: 'handover-api' });
    const next = deployment({ name: 'handover-api', image: 'registry.example.com/api:2.0.0' });
    (next.metadata as JsonObject).ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: 'uid-o' }];
    expect((await call({ operation: 'UPDATE', object: next, oldObject: old })).kind).toBe('denied');
    const now = Date.now() / 1000;
    const approvals: Record<string, string> = {};
    for (const action of ['deploy', 'unprotect'] as const) {
      for (const approver of ['bob', 'carol']) {
        approvals[`approval.twokey.dev/${approver}-${action}`] = await approve(issuer, action, next, {
          approver: `${approver}@example.com`,
          now,
        });
      }
    }
    expect((await call({ operation: 'UPDATE', object: withAnnotations(next, approvals), oldObject: old })).kind).toBe('allowed');
    await eventually(() => eventsFor('handover-api').length === 2);
    const [refused, approved] = eventsFor('handover-api');
    expect(refused).toMatchObject({ type: 'Warning', reason: 'ChangeRefused', action: 'Deploy+Unprotect' });
    expect(String(refused?.message)).toMatch(/^twokey: deploy\+unprotect of deployments.apps payments\/handover-api refused/);
    expect(approved).toMatchObject({ type: 'Normal', reason: 'ChangeApproved', action: 'Deploy+Unprotect' });
    expect(String(approved?.message)).toMatch(/\(digests deploy sha256:[0-9a-f]{64}, unprotect sha256:[0-9a-f]{64}\)$/);
  });

  it('records nothing for a dry run or an ungated request', async () => {
    await call({ operation: 'CREATE', object: deployment({ name: 'dry-api' }), dryRun: true });
    await call({ operation: 'CREATE', object: deployment({ name: 'plain-api', namespace: 'default' }) });
    await call({ operation: 'CREATE', object: deployment({ name: 'marker' }) });
    await eventually(() => eventsFor('marker').length === 1);
    expect(eventsFor('dry-api')).toEqual([]);
    expect(eventsFor('plain-api')).toEqual([]);
  });

  it('folds a retry loop into one Event whose count grows', async () => {
    for (let i = 0; i < 10; i++) await call({ operation: 'CREATE', object: deployment({ name: 'retry-api' }), user: 'ci-bot' });
    await eventually(() => Number(eventsFor('retry-api')[0]?.count ?? 0) >= 2);
    expect(eventsFor('retry-api')).toHaveLength(1);
  });

  it('tells the last count of a burst once the update interval has passed', async () => {
    const recorder = new EventRecorder(new KubeRest(loadKubeConfig({ kubeconfig: join(files.dir, 'kubeconfig') })), {
      logger: createLogger('silent'),
      updateIntervalMs: 300,
    });
    const review = toAdmissionRequest(admissionReview({ operation: 'CREATE', object: deployment({ name: 'burst-api' }), user: 'ci-bot' }));
    const refused = cannotJudgeVerdict('a test refusal');
    recorder.record(review, refused);
    await eventually(() => eventsFor('burst-api')[0]?.metadata !== undefined && kube.events.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (let i = 0; i < 4; i++) recorder.record(review, refused);
    // Within the interval nothing more is sent; after it, the count is right.
    expect(Number(eventsFor('burst-api')[0]?.count)).toBe(1);
    await eventually(() => Number(eventsFor('burst-api')[0]?.count) === 5, 2000);
  });

  it('tells the count of a burst that came while the Event was still being created', async () => {
    const recorder = new EventRecorder(new KubeRest(loadKubeConfig({ kubeconfig: join(files.dir, 'kubeconfig') })), {
      logger: createLogger('silent'),
      updateIntervalMs: 100,
    });
    const review = toAdmissionRequest(
      admissionReview({ operation: 'CREATE', object: deployment({ name: 'slow-burst-api' }), user: 'ci-bot' }),
    );
    kube.eventDelayMs = 400;
    try {
      for (let i = 0; i < 5; i++) recorder.record(review, cannotJudgeVerdict('a test refusal'));
      await eventually(() => Number(eventsFor('slow-burst-api')[0]?.count) === 5, 3000);
    } finally {
      kube.eventDelayMs = 0;
    }
  });

  it('records a namespace deletion refusal in the default namespace', async () => {
    const ns = namespaceObject('payments', { uid: 'uid-payments' });
    expect((await call({ operation: 'DELETE', oldObject: ns })).kind).toBe('denied');
    await eventually(() => kube.events.some((e) => (e.involvedObject as JsonObject).kind === 'Namespace'));
    const event = kube.events.find((e) => (e.involvedObject as JsonObject).kind === 'Namespace');
    expect(event).toMatchObject({
      involvedObject: { apiVersion: 'v1', kind: 'Namespace', name: 'payments', uid: 'uid-payments' },
      metadata: { namespace: 'default' },
    });
    expect(event?.involvedObject).not.toHaveProperty('namespace');
  });

  it('answers at once when the API is slow, and drops what does not fit the queue', async () => {
    kube.eventDelayMs = 400;
    try {
      const started = Date.now();
      const outcomes = await Promise.all(
        Array.from({ length: 12 }, (_, i) => call({ operation: 'CREATE', object: deployment({ name: `slow-${i}` }) })),
      );
      expect(outcomes.every((o) => o.kind === 'denied')).toBe(true);
      expect(Date.now() - started).toBeLessThan(400);
      const metrics = await server.app.inject('/metrics');
      expect(metrics.body).toMatch(/twokey_events_total\{result="dropped"\} [1-9]/);
    } finally {
      kube.eventDelayMs = 0;
    }
  });
});
