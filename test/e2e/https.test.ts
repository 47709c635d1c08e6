import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JsonObject } from '../../src/json.ts';
import { callWebhook, kubectlLines, type WebhookOutcome } from '../../src/kubernetes/webhook-client.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { endpointOf, SERVICE_NAME, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import {
  admissionReview,
  approve,
  deployment,
  fixture,
  type Issuer,
  makeIssuer,
  namespaceObject,
  type ReviewOptions,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let files: ServerFiles;
let server: RunningServer;

beforeAll(async () => {
  issuer = await makeIssuer();
  files = await serverFiles(issuer);
  server = await serveFiles(files, { pollIntervalMs: 100, metricsPort: 0 });
});

afterAll(async () => {
  await server?.shutdown();
  await files?.cleanup();
});

const endpoint = (path = '/validate', overrides: Partial<Parameters<typeof callWebhook>[0]> = {}) => ({
  ...endpointOf(server, files, path),
  ...overrides,
});
const call = (options: ReviewOptions, path?: string): Promise<WebhookOutcome> => callWebhook(endpoint(path), admissionReview(options));

describe('over HTTPS, as kube-apiserver calls it', () => {
  it('answers the fixtures: a non-critical CREATE admitted, a critical one refused as kubectl shows it', async () => {
    const review = fixture('kubewarden_deployment_create_admission_review.json');
    expect(await callWebhook(endpoint(), review)).toMatchObject({ kind: 'allowed' });
    const refused = await callWebhook(endpoint('/validate/critical'), review);
    expect(refused.kind).toBe('denied');
    const [line] = kubectlLines(refused, 'deployment.apps/api created', { verb: 'creating', file: 'api.yaml' });
    expect(line).toMatch(
      /^Error from server \(Forbidden\): error when creating "api\.yaml": admission webhook "workloads\.twokey\.dev" denied the request: twokey: deploy of deployments\.apps customer-1\/api refused: /,
    );
    expect(line).toMatch(/sha256:[0-9a-f]{64}/);
  });

  it('refuses a critical deploy, then admits it with two approvals', async () => {
    const api = deployment();
    expect((await call({ operation: 'CREATE', object: api })).kind).toBe('denied');
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com', now: Date.now() / 1000 }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com', now: Date.now() / 1000 }),
    });
    expect(await call({ operation: 'CREATE', object })).toMatchObject({ kind: 'allowed', auditAnnotations: { decision: 'admitted' } });
    expect(await call({ operation: 'CREATE', object, dryRun: true })).toMatchObject({ kind: 'allowed' });
  });

  it('guards a namespace deletion by its UID; without a namespace watch, the namespace controller deletes like anyone', async () => {
    const ns = namespaceObject('team-a', { labels: { 'twokey.dev/critical': 'true' } });
    const refused = await callWebhook(
      endpoint('/validate', { webhookName: 'namespaces.twokey.dev' }),
      admissionReview({ operation: 'DELETE', oldObject: ns }),
    );
    expect(kubectlLines(refused, '')[0]).toMatch(
      /^Error from server \(Forbidden\): admission webhook "namespaces\.twokey\.dev" denied the request: twokey: delete of namespaces team-a refused/,
    );
    const now = Date.now() / 1000;
    const approved = withAnnotations(ns, {
      'approval.twokey.dev/bob': await approve(issuer, 'delete', ns, { approver: 'bob@example.com', now }),
      'approval.twokey.dev/carol': await approve(issuer, 'delete', ns, { approver: 'carol@example.com', now }),
    });
    expect((await call({ operation: 'DELETE', oldObject: approved })).kind).toBe('allowed');
    // Its workloads reach the webhook through the critical-namespace entry, as the chart routes them.
    // This server watches no cluster, so it cannot know that the namespace's deletion has begun;
    // the garbage collector's deletes of workloads critical by their namespace stay exempt.
    const inside = deployment({ namespace: 'team-a' });
    const cleanup = (user: string) => ({ operation: 'DELETE' as const, oldObject: inside, user, noName: true });
    expect((await call(cleanup('system:serviceaccount:kube-system:namespace-controller'), '/validate/critical')).kind).toBe('denied');
    expect((await call(cleanup('system:serviceaccount:kube-system:generic-garbage-collector'), '/validate/critical')).kind).toBe('allowed');
  });

  it('is refused by the client when the certificate does not carry the service name', async () => {
    const outcome = await callWebhook(
      endpoint('/validate', { serverName: 'other.twokey.svc' }),
      admissionReview({ operation: 'CREATE', object: deployment() }),
    );
    expect(outcome.kind).toBe('failed');
    if (outcome.kind === 'failed')
      expect(outcome.message).toMatch(
        /failed to call webhook: Post "https:\/\/other\.twokey\.svc:\d+\/validate\?timeout=10s": .*(altname|certificate)/i,
      );
  });

  it('is refused by the client when the CA bundle is another one', async () => {
    const { createCertificateAuthority } = await import('../../src/dev/certificates.ts');
    const stranger = await createCertificateAuthority('stranger');
    const outcome = await callWebhook(
      endpoint('/validate', { caBundle: stranger.certPem }),
      admissionReview({ operation: 'CREATE', object: deployment() }),
    );
    expect(outcome.kind).toBe('failed');
  });

  it('answers a v1beta1 review with HTTP 400, which the apiserver treats as a failed call (never an admission)', async () => {
    const outcome = await callWebhook(endpoint(), fixture('neuvector_deployment_update_admission_review_v1beta1.json'));
    expect(outcome.kind).toBe('failed');
    if (outcome.kind === 'failed') expect(outcome.message).toContain('apiVersion must be admission.k8s.io/v1');
  });

  it('serves health, readiness and metrics over the same port', async () => {
    const base = `https://127.0.0.1:${server.port}`;
    const { request } = await import('node:https');
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        request(`${base}${path}`, { ca: files.ca.certPem, servername: SERVICE_NAME }, (res) => {
          let body = '';
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        })
          .on('error', reject)
          .end();
      });
    expect((await get('/healthz')).status).toBe(200);
    expect((await get('/readyz')).status).toBe(200);
    const metrics = await get('/metrics');
    expect(metrics.body).toContain('twokey_admission_reviews_total');
    expect(metrics.body).toContain('process_resident_memory_bytes');
  });

  it('also serves metrics over plain HTTP on the metrics port', async () => {
    expect(server.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    const response = await fetch(server.metricsUrl as string);
    expect(response.status).toBe(200);
    expect(await response.text()).toContain('twokey_admission_reviews_total');
  });

  it('answers a 3 MiB review, digesting it off the event loop', async () => {
    const big = deployment({ name: 'huge' });
    (big.spec as Record<string, unknown>).blob = 'x'.repeat(3 * 1024 * 1024);
    const outcome = await call({ operation: 'CREATE', object: big });
    expect(outcome.kind).toBe('denied');
    if (outcome.kind === 'denied') expect(outcome.message).toMatch(/bound to digest sha256:[0-9a-f]{64}/);
  });

  it('refuses a large object it cannot digest, and keeps serving', async () => {
    const broken = deployment({ name: 'broken' });
    (broken.spec as Record<string, unknown>).blob = `${'x'.repeat(100_000)}\ud800`;
    const outcome = await call({ operation: 'CREATE', object: broken });
    expect(outcome.kind).toBe('denied');
    if (outcome.kind === 'denied')
      expect(outcome.message).toMatch(/cannot judge this request: its spec cannot be digested \(Lone surrogate/i);
    expect((await call({ operation: 'CREATE', object: deployment() })).kind).toBe('denied');
  });

  it('answers many reviews on kept-alive connections in parallel', async () => {
    const reviews = Array.from({ length: 40 }, (_, i) => ({
      operation: 'CREATE' as const,
      object: deployment({ name: `api-${i}` }) as JsonObject,
    }));
    const outcomes = await Promise.all(reviews.map((r) => call(r)));
    expect(outcomes.every((o) => o.kind === 'denied')).toBe(true);
  });
});
