import { beforeAll, describe, expect, it } from 'vitest';
import type { ConfigSnapshot } from '../../src/config/store.ts';
import { buildApp } from '../../src/server/app.ts';
import { createMetrics } from '../../src/server/metrics.ts';
import { captureLog } from '../support/log.ts';
import {
  admissionReview,
  approve,
  deployment,
  fixture,
  type Issuer,
  makeIssuer,
  makeSnapshot,
  NOW,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let snapshot: ConfigSnapshot;
beforeAll(async () => {
  issuer = await makeIssuer();
  snapshot = await makeSnapshot([issuer]);
});

function app(options: Partial<Parameters<typeof buildApp>[0]> = {}) {
  return buildApp({ config: { current: () => snapshot }, clock: () => NOW, ...options });
}

const post = (server: ReturnType<typeof app>, body: unknown, url = '/validate?timeout=10s') =>
  server.inject({
    method: 'POST',
    url,
    payload: body as object,
    headers: { 'content-type': 'application/json', accept: 'application/json, */*' },
  });

describe('POST /validate', () => {
  it('answers the kubewarden fixture (a non-critical Deployment CREATE) with an exact AdmissionReview v1', async () => {
    const review = fixture('kubewarden_deployment_create_admission_review.json');
    const response = await post(app(), review);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      response: { uid: review.request.uid, allowed: true },
    });
  });

  it('refuses the same Deployment on /validate/critical with 403 Forbidden and a twokey: message', async () => {
    const review = fixture('kubewarden_deployment_create_admission_review.json');
    const body = (await post(app(), review, '/validate/critical?timeout=10s')).json();
    expect(body.response).toMatchObject({ uid: review.request.uid, allowed: false, status: { code: 403, reason: 'Forbidden' } });
    expect(body.response.status.message).toMatch(
      /^twokey: deploy of deployments.apps customer-1\/api refused: 0 of 2 required approvals\./,
    );
    expect(body.response.status.message).toMatch(/digest sha256:[0-9a-f]{64}\./);
    expect(body.response.auditAnnotations).toMatchObject({ decision: 'refused', action: 'deploy' });
    expect(body.response).not.toHaveProperty('patch');
    expect(body.response).not.toHaveProperty('patchType');
  });

  it('judges the captured request fixture (server defaults, status, options) once wrapped in a review', async () => {
    const request = fixture('kubewarden_deployment_create_admission_request.json');
    const body = (
      await post(
        app(),
        { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { ...request, uid: 'u-1' } },
        '/validate/critical',
      )
    ).json();
    expect(body.response).toMatchObject({ uid: 'u-1', allowed: false });
  });

  it('admits with approvals and names the change, approvers and digest in audit annotations', async () => {
    const api = deployment();
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
      'approval.twokey.dev/junk': 'junk',
    });
    const body = (await post(app(), admissionReview({ operation: 'CREATE', object }))).json();
    expect(body.response.allowed).toBe(true);
    expect(body.response.auditAnnotations).toMatchObject({
      decision: 'admitted',
      change: 'CHG0031337',
      approvers: 'bob@example.com,carol@example.com',
    });
    expect(body.response.auditAnnotations.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const key of Object.keys(body.response.auditAnnotations)) expect(key).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    expect(body.response.warnings).toEqual(['twokey: approval.twokey.dev/junk did not count: has 1 segments, a compact JWS has 3']);
  });

  it('keeps warnings printable and short whatever the tokens hold', async () => {
    const api = deployment();
    const hostile = `\u0007${'x'.repeat(500)}\n.a.b`;
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com', change: 'CHG\u0000\u202E' }),
      'approval.twokey.dev/dave': await approve(issuer, 'deploy', api, { approver: 'dave@example.com' }),
      'approval.twokey.dev/eve': hostile,
    });
    const body = (await post(app(), admissionReview({ operation: 'CREATE', object }))).json();
    expect(body.response.allowed).toBe(true);
    for (const warning of body.response.warnings) {
      expect(warning).not.toMatch(/[\p{Cc}\p{Cf}]/u);
      expect([...warning].length).toBeLessThanOrEqual(120);
    }
  });

  it.each([
    [
      'a v1beta1 review',
      () => fixture('neuvector_deployment_update_admission_review_v1beta1.json'),
      /apiVersion must be admission.k8s.io\/v1/,
    ],
    [
      'a review without request.uid',
      () => ({
        apiVersion: 'admission.k8s.io/v1',
        kind: 'AdmissionReview',
        request: { ...fixture('kubewarden_deployment_create_admission_review.json').request, uid: undefined },
      }),
      /uid/,
    ],
    [
      'a review with an empty uid',
      () => ({
        ...fixture('kubewarden_deployment_create_admission_review.json'),
        request: { ...fixture('kubewarden_deployment_create_admission_review.json').request, uid: '' },
      }),
      /uid/,
    ],
    ['a review without request', () => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), /request/],
    [
      'another kind',
      () => ({ ...fixture('kubewarden_deployment_create_admission_review.json'), kind: 'Pod' }),
      /kind must be AdmissionReview/,
    ],
    [
      'an unknown operation',
      () => ({
        ...fixture('kubewarden_deployment_create_admission_review.json'),
        request: { ...fixture('kubewarden_deployment_create_admission_review.json').request, operation: 'PATCH' },
      }),
      /operation/,
    ],
    [
      'dryRun as a string',
      () => ({
        ...fixture('kubewarden_deployment_create_admission_review.json'),
        request: { ...fixture('kubewarden_deployment_create_admission_review.json').request, dryRun: 'true' },
      }),
      /dryRun/,
    ],
    ['an array', () => [1, 2], /not an AdmissionReview v1/],
  ])('answers %s with HTTP 400 and a Status naming the problem', async (_name, body, message) => {
    const response = await post(app(), body());
    expect(response.statusCode).toBe(400);
    expect(response.json()).toMatchObject({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'BadRequest', code: 400 });
    expect(response.json().message).toMatch(/^twokey: /);
    expect(response.json().message).toMatch(message);
  });

  it('answers a body that is not JSON, or not sent as JSON, with HTTP 400', async () => {
    const server = app();
    for (const [payload, type] of [
      ['{"apiVersion":', 'application/json'],
      ['hello', 'text/plain'],
      ['', 'application/json'],
    ]) {
      const response = await server.inject({ method: 'POST', url: '/validate', payload, headers: { 'content-type': type as string } });
      expect(response.statusCode).toBe(400);
      expect(response.json().message).toMatch(/^twokey: the body/);
    }
  });

  it('answers a body over the limit with 413, never with an admission', async () => {
    const review = admissionReview({ operation: 'CREATE', object: deployment({ annotations: { big: 'x'.repeat(4096) } }) });
    const response = await post(app({ bodyLimit: 2048 }), review);
    expect(response.statusCode).toBe(413);
  });

  it('accepts a 3 MiB object with its old version by default', async () => {
    const big = deployment({ annotations: { blob: 'x'.repeat(3 * 1024 * 1024) } });
    const response = await post(app(), admissionReview({ operation: 'UPDATE', object: big, oldObject: big }));
    expect(response.statusCode).toBe(200);
    expect(response.json().response.allowed).toBe(true);
  });

  it('refuses, naming the error, when judging fails internally', async () => {
    const broken = app({
      namespaces: {
        criticality: () => {
          throw new Error('cache exploded');
        },
        deletion: () => 'unknown',
      },
    });
    const body = (await post(broken, admissionReview({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }))).json();
    expect(body.response).toMatchObject({ allowed: false, status: { code: 403 } });
    expect(body.response.status.message).toContain('internal error (cache exploded)');
  });

  it('refuses everything while no policy is loaded', async () => {
    const body = (
      await post(app({ config: { current: () => undefined } }), admissionReview({ operation: 'CREATE', object: deployment() }))
    ).json();
    expect(body.response.allowed).toBe(false);
    expect(body.response.status.message).toContain('policy and keys are not loaded');
  });

  it('answers unknown paths with 404', async () => {
    expect((await app().inject({ method: 'POST', url: '/mutate' })).statusCode).toBe(404);
  });
});

describe('health, readiness and metrics', () => {
  it('is alive, and ready only when everything is loaded and it is not draining', async () => {
    let notReady = ['no JWKS loaded yet for issuer x'];
    const server = app({ readiness: [{ notReady: () => notReady }] });
    expect((await server.inject('/healthz')).statusCode).toBe(200);
    const unready = await server.inject('/readyz');
    expect(unready.statusCode).toBe(503);
    expect(unready.json().reasons).toEqual(notReady);
    notReady = [];
    expect((await server.inject('/readyz')).statusCode).toBe(200);
    expect((await post(server, admissionReview({ operation: 'CREATE', object: deployment() }))).headers.connection).not.toBe('close');
    server.markDraining();
    expect((await server.inject('/readyz')).json()).toEqual({ status: 'not ready', reasons: ['shutting down'] });
    // Draining: reviews are still judged, and each answer closes its connection.
    const drained = await post(server, admissionReview({ operation: 'CREATE', object: deployment() }));
    expect(drained.statusCode).toBe(200);
    expect(drained.headers.connection).toBe('close');
  });

  it('tells readiness in twokey_ready whether or not anything asks /readyz', async () => {
    let notReady = ['no JWKS loaded yet for issuer x'];
    const server = app({ readiness: [{ notReady: () => notReady }] });
    const ready = async () => /^twokey_ready (\d)$/m.exec((await server.inject('/metrics')).body)?.[1];
    expect(await ready()).toBe('0');
    notReady = [];
    expect(await ready()).toBe('1');
    server.markDraining();
    expect(await ready()).toBe('0');
  });

  it('counts reviews by verdict, action and dry run, and bad requests', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const server = app({ metrics });
    await post(server, admissionReview({ operation: 'CREATE', object: deployment(), dryRun: true }));
    await post(server, admissionReview({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }));
    await post(server, { nope: true });
    const text = (await server.inject('/metrics')).body;
    expect(text).toContain('twokey_admission_reviews_total{verdict="refused",action="deploy",dry_run="true",route="/validate"} 1');
    expect(text).toContain('twokey_admission_reviews_total{verdict="admitted",action="none",dry_run="false",route="/validate"} 1');
    expect(text).toContain('twokey_bad_requests_total{reason="not-a-review"} 1');
    expect(text).toContain('twokey_admission_decision_seconds_bucket');
  });
});

describe('the decision log', () => {
  it('writes one line per review with who, what and why, and never a token', async () => {
    const { lines, logger } = captureLog();
    const server = app({ logger });
    const api = deployment();
    const token = await approve(issuer, 'deploy', api, { approver: 'bob@example.com' });
    const review = admissionReview({
      operation: 'CREATE',
      object: withAnnotations(api, { 'approval.twokey.dev/bob': token, 'approval.twokey.dev/x': 'a.b' }),
      user: 'alice',
    });
    await post(server, review);
    const decisions = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'admission decision');
    expect(decisions).toHaveLength(1);
    expect(decisions[0]).toMatchObject({
      uid: review.request.uid,
      user: 'alice',
      operation: 'CREATE',
      resource: 'deployments.apps',
      namespace: 'payments',
      name: 'api',
      action: 'deploy',
      verdict: 'refused',
      change: 'CHG0031337',
      approvers: ['bob@example.com'],
      reasons: ['approval.twokey.dev/x: malformed'],
    });
    expect(decisions[0].digest).toMatch(/^sha256:/);
    expect(typeof decisions[0].durationMs).toBe('number');
    expect(lines.join('')).not.toContain(token.split('.')[2]);
  });
});

describe('a request gated as several actions', () => {
  it('is counted, logged and audited with each aspect its digest, change and approvers', async () => {
    const { lines, logger } = captureLog();
    const metrics = createMetrics({ defaultMetrics: false });
    const server = app({ metrics, logger });
    const api = deployment();
    const next = deployment({ image: 'registry.example.com/api:2.0.0' });
    (next.metadata as Record<string, unknown>).ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: 'uid-o' }];
    const object = withAnnotations(next, {
      'approval.twokey.dev/bob-unprotect': await approve(issuer, 'unprotect', next, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol-unprotect': await approve(issuer, 'unprotect', next, { approver: 'carol@example.com' }),
    });
    const body = (await post(server, admissionReview({ operation: 'UPDATE', object, oldObject: api }))).json();
    expect(body.response.allowed).toBe(false);
    expect(body.response.status.message).toMatch(/^twokey: deploy\+unprotect of deployments\.apps payments\/api refused: /);
    expect(body.response.auditAnnotations).toMatchObject({
      decision: 'refused',
      action: 'deploy+unprotect',
      'unprotect-change': 'CHG0031337',
    });
    for (const key of Object.keys(body.response.auditAnnotations)) expect(key).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    const text = (await server.inject('/metrics')).body;
    expect(text).toContain(
      'twokey_admission_reviews_total{verdict="refused",action="deploy+unprotect",dry_run="false",route="/validate"} 1',
    );
    const [decision] = lines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'admission decision');
    expect(decision).toMatchObject({
      action: 'deploy+unprotect',
      verdict: 'refused',
      aspects: [
        { action: 'deploy', allowed: false },
        { action: 'unprotect', allowed: true, change: 'CHG0031337', approvers: ['bob@example.com', 'carol@example.com'] },
      ],
    });
    expect(decision.aspects[0].digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('the decision log line', () => {
  it("names the object of a collection delete's review, which carries no request name", async () => {
    const { lines, logger } = captureLog();
    const server = app({ logger });
    const review = admissionReview({
      operation: 'DELETE',
      oldObject: deployment({ name: 'ledger' }),
      user: 'system:serviceaccount:kube-system:namespace-controller',
      noName: true,
    });
    await post(server, review);
    const decision = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'admission decision');
    expect(decision).toMatchObject({ operation: 'DELETE', namespace: 'payments', name: 'ledger' });
  });
});

describe('key rotation', () => {
  it('asks for a refetch of the issuer whose JWKS lacks a token kid, and of no other', async () => {
    const asked: string[] = [];
    const server = app({ config: { current: () => snapshot, requestRefresh: (issuer) => asked.push(issuer) } });
    const api = deployment();
    const rotated = await makeIssuer(issuer.issuer, 'EdDSA', 'next-key');
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(rotated, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/junk': 'a.b.c',
    });
    await post(server, admissionReview({ operation: 'CREATE', object }));
    expect(asked).toEqual([issuer.issuer]);
  });
});
