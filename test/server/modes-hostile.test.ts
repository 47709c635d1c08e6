/**
 * The plan marker, warn mode and break-glass through the webhook, against an agent that writes any
 * label or annotation and sends any dry run: the marker admits only a dry run; warn mode is only
 * the policy's and never admits what twokey cannot judge; a break-glass admission, of a deploy, of
 * a delete or of a Namespace's deletion, is loud in every place it is recorded.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConfigSnapshot } from '../../src/config/store.ts';
import type { Verdict } from '../../src/decision/verdict.ts';
import type { JsonObject } from '../../src/json.ts';
import type { AdmissionRequest } from '../../src/kubernetes/admission.ts';
import { buildApp } from '../../src/server/app.ts';
import { createMetrics } from '../../src/server/metrics.ts';
import { captureLog } from '../support/log.ts';
import {
  admissionReview,
  approve,
  BREAK_GLASS_ISSUER,
  BREAK_GLASS_POLICY,
  bindingFor,
  breakGlass,
  deployment,
  type Issuer,
  makeIssuer,
  makePolicy,
  makeSnapshot,
  NOW,
  namespaceObject,
  type ReviewOptions,
  withAnnotations,
  withLabels,
  withOwners,
} from '../support/world.ts';

let issuer: Issuer;
let glass: Issuer;
let enforce: ConfigSnapshot;
let warnListed: ConfigSnapshot;

beforeAll(async () => {
  issuer = await makeIssuer();
  glass = await makeIssuer(BREAK_GLASS_ISSUER, 'EdDSA', 'glass-1');
  enforce = await makeSnapshot([issuer, glass], makePolicy({ breakGlass: BREAK_GLASS_POLICY }));
  warnListed = await makeSnapshot([issuer, glass], makePolicy({ breakGlass: BREAK_GLASS_POLICY, warnNamespaces: ['search'] }));
});

const MARKER = 'twokey.dev/plan';
const BG = 'twokey.dev/break-glass';
const api = deployment();

function server(snapshot: () => ConfigSnapshot, options: Partial<Parameters<typeof buildApp>[0]> = {}) {
  const log = captureLog();
  const metrics = createMetrics({ defaultMetrics: false });
  const decisions: Array<{ request: AdmissionRequest; verdict: Verdict }> = [];
  const app = buildApp({
    config: { current: snapshot },
    clock: () => NOW,
    logger: log.logger,
    metrics,
    onDecision: (request, verdict) => decisions.push({ request, verdict }),
    ...options,
  });
  const post = async (body: unknown, url = '/validate') =>
    app.inject({ method: 'POST', url, payload: body as object, headers: { 'content-type': 'application/json' } });
  const review = async (options: ReviewOptions, tweak: (request: Record<string, unknown>) => void = () => {}) => {
    const body = admissionReview(options) as unknown as { request: Record<string, unknown> };
    tweak(body.request);
    const response = await post(body);
    return { status: response.statusCode, body: response.json() as { response: Record<string, unknown> } };
  };
  const logLines = (msg: string) => log.lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);
  const metricsText = async () => (await app.inject('/metrics')).body;
  return { app, review, logLines, metricsText, decisions };
}

const allowedOf = (result: { status: number; body: { response: Record<string, unknown> } }) => {
  expect(result.status).toBe(200);
  return result.body.response.allowed;
};

describe('the plan marker admits only a dry run', () => {
  const marked = withAnnotations(api, { [MARKER]: 'true' });

  it('admits the marked dry run (the control for every case below)', async () => {
    const { review } = server(() => enforce);
    const result = await review({ operation: 'CREATE', object: marked, dryRun: true });
    expect(allowedOf(result)).toBe(true);
    expect(result.body.response.warnings).toEqual([
      `twokey plan: deploy deployments.apps payments/api ${bindingFor('deploy', api).digest}`,
    ]);
  });

  it('refuses the marked write whose dryRun is false or absent', async () => {
    const { review } = server(() => enforce);
    expect(allowedOf(await review({ operation: 'CREATE', object: marked }))).toBe(false);
    expect(allowedOf(await review({ operation: 'CREATE', object: marked }, (r) => delete r.dryRun))).toBe(false);
  });

  it.each([
    ['the string "true"', 'true'],
    ['the string "All"', 'All'],
    ['a list', ['All']],
    ['1', 1],
    ['null', null],
  ])('never reads a dryRun of %s as a dry run: the body is refused', async (_name, value) => {
    const { review } = server(() => enforce);
    const result = await review({ operation: 'CREATE', object: marked }, (r) => {
      r.dryRun = value;
    });
    expect(result.status).toBe(400);
    expect(result.body.response).toBeUndefined();
  });

  it('refuses a marked delete whose options say dryRun but whose review does not', async () => {
    const { review } = server(() => enforce);
    const result = await review({ operation: 'DELETE', oldObject: marked }, (r) => {
      r.options = { kind: 'DeleteOptions', apiVersion: 'meta.k8s.io/v1', dryRun: ['All'] };
    });
    expect(allowedOf(result)).toBe(false);
    expect(result.body.response.status).toMatchObject({ code: 403 });
  });

  it('refuses a real write through the status subresource that unprotects a marked workload', async () => {
    const { review } = server(() => enforce);
    const owner = { apiVersion: 'v1', kind: 'ConfigMap', name: 'tenant', uid: 'uid-tenant' };
    const result = await review({ operation: 'UPDATE', subResource: 'status', object: withOwners(marked, [owner]), oldObject: marked });
    expect(allowedOf(result)).toBe(false);
    expect(String((result.body.response.status as JsonObject).message)).toMatch(/^twokey: unprotect of deployments.apps payments\/api/);
    const dry = await review({
      operation: 'UPDATE',
      subResource: 'status',
      object: withOwners(marked, [owner]),
      oldObject: marked,
      dryRun: true,
    });
    expect(allowedOf(dry)).toBe(true);
  });

  it("refuses a marked Namespace's real deletion, and its dry run names only the digest", async () => {
    const { review, decisions } = server(() => enforce);
    const bob = await approve(issuer, 'delete', namespaceObject('payments'), { approver: 'bob@example.com' });
    const ns = namespaceObject('payments', { annotations: { [MARKER]: '', 'approval.twokey.dev/bob': bob } });
    expect(allowedOf(await review({ operation: 'DELETE', oldObject: ns }))).toBe(false);
    const dry = await review({ operation: 'DELETE', oldObject: ns, dryRun: true });
    expect(allowedOf(dry)).toBe(true);
    expect(dry.body.response.warnings).toEqual([`twokey plan: delete namespaces payments ${bindingFor('delete', ns).digest}`]);
    // Nothing of the approvals on the object: neither judged nor told.
    expect(JSON.stringify(dry.body)).not.toContain(bob.slice(0, 20));
    expect(JSON.stringify(dry.body)).not.toContain('bob@example.com');
    expect(dry.body.response.auditAnnotations).toEqual({ decision: 'planned', action: 'delete', digest: bindingFor('delete', ns).digest });
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(decisions).toHaveLength(2);
    expect(decisions.at(-1)?.verdict).toMatchObject({ allowed: true, grounds: { kind: 'planned' }, approvals: [] });
  });

  it('is read from the object the approvals are read from: a marker on the old object of a dry-run update is no marker', async () => {
    const { review } = server(() => enforce);
    const next = deployment({ image: 'registry.example.com/api:2.0.0' });
    const result = await review({ operation: 'UPDATE', object: next, oldObject: marked, dryRun: true });
    expect(allowedOf(result)).toBe(false);
    expect(String((result.body.response.status as JsonObject).message)).toMatch(/0 of 2 required approvals/);
  });

  it('never admits on a dry run what twokey cannot judge, marker or not', async () => {
    const { review } = server(() => enforce);
    const malformed = withAnnotations(api, { [MARKER]: 'true' });
    (malformed.metadata as JsonObject).labels = 'critical';
    const bad = await review({ operation: 'CREATE', object: malformed, dryRun: true });
    expect(allowedOf(bad)).toBe(false);
    expect(String((bad.body.response.status as JsonObject).message)).toMatch(/cannot judge/);
    const unknown = server(() => enforce, { namespaces: { criticality: () => 'unknown', deletion: () => 'unknown' } });
    const elsewhere = withAnnotations(deployment({ namespace: 'team-x' }), { [MARKER]: 'true' });
    const unseen = await unknown.review({ operation: 'CREATE', object: elsewhere, dryRun: true });
    expect(allowedOf(unseen)).toBe(false);
    expect(String((unseen.body.response.status as JsonObject).message)).toMatch(/cannot judge/);
  });
});

describe('warn mode is the policy file alone', () => {
  it.each([
    ['a namespace that only starts with a listed one', 'search-prod'],
    ['a prefix of a listed namespace', 'searc'],
    ['a listed namespace in another case', 'Search'],
  ])('does not cover %s', async (_name, namespace) => {
    const { review } = server(() => warnListed);
    const object = withLabels(deployment({ namespace }), { 'twokey.dev/critical': 'true' });
    const result = await review({ operation: 'CREATE', object });
    expect(allowedOf(result)).toBe(false);
    expect(result.body.response.auditAnnotations).not.toHaveProperty('mode');
  });

  it('covers the listed namespace (the control), whatever the object says', async () => {
    const { review } = server(() => warnListed);
    const object = withLabels(deployment({ namespace: 'search' }), { 'twokey.dev/critical': 'true' });
    expect(allowedOf(await review({ operation: 'CREATE', object }))).toBe(true);
  });

  it.each([
    ['labels', (o: JsonObject) => withLabels(o, { 'twokey.dev/mode': 'warn', 'twokey.dev/warn': 'true' })],
    ['annotations', (o: JsonObject) => withAnnotations(o, { 'twokey.dev/mode': 'warn', 'twokey.dev/warn': 'true' })],
  ])('is not turned on by %s on the object', async (_name, mark) => {
    const { review } = server(() => enforce);
    expect(allowedOf(await review({ operation: 'CREATE', object: mark(api) }))).toBe(false);
  });

  it('is not turned on for a workload by a Namespace whose name is listed but is not its namespace', async () => {
    const { review } = server(() => warnListed);
    // A workload's namespace is the request's: a metadata.namespace that says otherwise is not judged.
    const object = withLabels(deployment({ namespace: 'search' }), { 'twokey.dev/critical': 'true' });
    const result = await review({ operation: 'CREATE', object }, (r) => {
      r.namespace = 'payments';
    });
    expect(allowedOf(result)).toBe(false);
    expect(String((result.body.response.status as JsonObject).message)).toMatch(/cannot judge/);
  });

  it('never admits what twokey cannot judge in a warned namespace: a malformed object, an invalid user, an unseen namespace', async () => {
    const warnAll = await makeSnapshot([issuer], makePolicy({ mode: 'warn' }));
    const { review } = server(() => warnAll, { namespaces: { criticality: () => 'unknown', deletion: () => 'unknown' } });
    const malformed = structuredClone(api);
    (malformed.metadata as JsonObject).ownerReferences = [{ kind: 'X' }];
    const owners = await review({ operation: 'UPDATE', object: malformed, oldObject: api });
    expect(allowedOf(owners)).toBe(false);
    const user = await review({ operation: 'CREATE', object: api, user: 'bob\u202e@example.com' });
    expect(allowedOf(user)).toBe(false);
    const nobody = await review({ operation: 'CREATE', object: api, user: '' });
    expect(allowedOf(nobody)).toBe(false);
    const unseen = await review({ operation: 'CREATE', object: deployment({ namespace: 'team-x' }) });
    expect(allowedOf(unseen)).toBe(false);
    // The control: the same policy admits, in warn mode, what it can judge.
    expect(allowedOf(await review({ operation: 'CREATE', object: api }))).toBe(true);
  });

  it('never admits before a policy is loaded', async () => {
    const { review } = server(() => undefined as unknown as ConfigSnapshot);
    expect(allowedOf(await review({ operation: 'CREATE', object: api }))).toBe(false);
  });
});

describe('a break-glass admission is loud wherever it is recorded', () => {
  const loud = async (options: ReviewOptions, action: string) => {
    const { review, logLines, metricsText, decisions } = server(() => enforce);
    const result = await review(options);
    expect(allowedOf(result)).toBe(true);
    const response = result.body.response;
    expect((response.warnings as string[])[0]).toMatch(
      /^twokey: BREAK-GLASS: admitted without two approvals, for incident "INC-123" by "dave@example.com"$/,
    );
    expect(response.auditAnnotations).toMatchObject({
      decision: 'admitted',
      action,
      'break-glass': 'INC-123',
      'break-glass-approver': 'dave@example.com',
    });
    expect(await metricsText()).toContain(`twokey_break_glass_admissions_total{action="${action}",dry_run="false"} 1`);
    expect(logLines('break-glass admission')).toEqual([expect.objectContaining({ level: 50, action, incident: 'INC-123' })]);
    // The Event is recorded from the verdict handed on after the answer.
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(decisions.at(-1)?.verdict).toMatchObject({ allowed: true, breakGlass: { status: 'counted', incident: 'INC-123' } });
  };

  it('for a deploy', async () => {
    const token = await breakGlass(glass, [bindingFor('deploy', api)], { approver: 'dave@example.com' });
    await loud({ operation: 'CREATE', object: withAnnotations(api, { [BG]: token }) }, 'deploy');
  });

  it('for the delete of a workload', async () => {
    const token = await breakGlass(glass, [bindingFor('delete', api)], { approver: 'dave@example.com' });
    await loud({ operation: 'DELETE', oldObject: withAnnotations(api, { [BG]: token }) }, 'delete');
  });

  it("for a Namespace's deletion", async () => {
    const ns = namespaceObject('payments');
    const token = await breakGlass(glass, [bindingFor('delete', ns)], { approver: 'dave@example.com' });
    await loud({ operation: 'DELETE', oldObject: withAnnotations(ns, { [BG]: token }) }, 'delete');
  });

  it('and a token replayed on a later change of the same object, or on the same name recreated, is refused', async () => {
    const { review, metricsText } = server(() => enforce);
    const token = await breakGlass(glass, [bindingFor('deploy', api)], { approver: 'dave@example.com' });
    const next = deployment({ image: 'registry.example.com/api:2.0.0' });
    const later = await review({
      operation: 'UPDATE',
      object: withAnnotations(next, { [BG]: token }),
      oldObject: withAnnotations(api, { [BG]: token }),
    });
    expect(allowedOf(later)).toBe(false);
    const ns = namespaceObject('payments');
    const nsToken = await breakGlass(glass, [bindingFor('delete', ns)], { approver: 'dave@example.com' });
    const recreated = namespaceObject('payments', { uid: 'uid-payments-2' });
    expect(allowedOf(await review({ operation: 'DELETE', oldObject: withAnnotations(recreated, { [BG]: nsToken }) }))).toBe(false);
    expect(await metricsText()).not.toContain('twokey_break_glass_admissions_total{');
  });
});
