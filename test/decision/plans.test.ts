/**
 * Plan approvals on hostile ground: one token per approver approves every object of a plan, and
 * counts for an object only through the proof it carries of its own entry. Each hostile case stands
 * next to one valid approval of the object (bob's, of one object), so if the rule under test were
 * removed the plan approval would make the second approval and the request would be admitted.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Action } from '../../src/change/digest.ts';
import { decide } from '../../src/decision/decide.ts';
import type { Decision } from '../../src/decision/wording.ts';
import type { JsonObject } from '../../src/json.ts';
import { mintPlanApproval } from '../../src/keys/signing.ts';
import { encodeProofs, MAX_PLAN_ENTRIES, type PlanEntry, planTree, proofAnnotationKey } from '../../src/plan/entries.ts';
import { rawToken } from '../support/tokens.ts';
import {
  approve,
  bindingFor,
  CLUSTER,
  deployment,
  type Issuer,
  makeIssuer,
  makeSnapshot,
  NOW,
  offlineContext,
  request,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let snapshot: Awaited<ReturnType<typeof makeSnapshot>>;

const critical = { 'twokey.dev/critical': 'true' };
const api = deployment({ labels: critical });
const worker = deployment({ name: 'worker', labels: critical, image: 'registry.example.com/worker:1.0.0' });
const ledger = deployment({ name: 'ledger', labels: critical, image: 'registry.example.com/ledger:1.0.0' });
const entryOf = (action: Action, object: JsonObject): PlanEntry => bindingFor(action, object);
const PLAN = planTree([entryOf('deploy', api), entryOf('deploy', worker), entryOf('deploy', ledger)]);
const indexOf = (object: JsonObject) => PLAN.entries.findIndex((e) => e.name === (object.metadata as JsonObject).name);
const proofsOf = (object: JsonObject, overrides: Record<string, unknown> = {}) =>
  encodeProofs({ plan: PLAN.digest, size: PLAN.entries.length, proofs: [PLAN.proof(indexOf(object))], ...overrides });
const KEY = proofAnnotationKey(PLAN.digest);

beforeAll(async () => {
  issuer = await makeIssuer();
  snapshot = await makeSnapshot([issuer]);
});

const ctx = () => offlineContext(snapshot);

const planApproval = (approver: string, overrides: { plan?: string; entries?: number; change?: string; issuedAt?: number } = {}) =>
  mintPlanApproval({
    privateJwk: issuer.privateJwk,
    issuer: issuer.issuer,
    audience: CLUSTER,
    approver,
    change: overrides.change ?? 'CHG0031337',
    plan: overrides.plan ?? PLAN.digest,
    entries: overrides.entries ?? PLAN.entries.length,
    ttlSeconds: 3600,
    now: overrides.issuedAt ?? NOW - 60,
  });

/** A plan approval's claims as written by hand, for the claims no minting would write. */
const planClaims = (twokey: Record<string, unknown>) => ({
  iss: issuer.issuer,
  aud: CLUSTER,
  sub: 'carol@example.com',
  iat: NOW - 60,
  exp: NOW + 3600,
  jti: 'plan-jti-1',
  twokey: { v: 2, change: 'CHG0031337', plan: PLAN.digest, entries: PLAN.entries.length, ...twokey },
});

const create = (object: JsonObject, annotations: Record<string, string>, options: { user?: string; dryRun?: boolean } = {}) =>
  decide(
    request({
      operation: 'CREATE',
      object: withAnnotations(object, annotations),
      user: options.user ?? 'deployer@example.com',
      ...(options.dryRun ? { dryRun: true } : {}),
    }),
    ctx(),
  );
const report = (verdict: Decision, key: string) => verdict.approvals.find((a) => a.key === key);

describe('plan approvals', () => {
  it('admits each object of the plan with one token per approver and the proof of its entry', async () => {
    const [bob, carol] = [await planApproval('bob@example.com'), await planApproval('carol@example.com')];
    for (const object of [api, worker, ledger]) {
      const verdict = await create(object, { 'approval.twokey.dev/bob': bob, 'approval.twokey.dev/carol': carol, [KEY]: proofsOf(object) });
      expect(verdict.message).toBeUndefined();
      expect(verdict.allowed).toBe(true);
      expect(verdict.approvers).toEqual(['bob@example.com', 'carol@example.com']);
      // The trail names the plan that let the object through, beside the change id and the approvers.
      expect(verdict.auditAnnotations).toMatchObject({ change: 'CHG0031337', plan: PLAN.digest });
    }
  });

  it('adds up with approvals of one object of the same change', async () => {
    const verdict = await create(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await planApproval('carol@example.com'),
      [KEY]: proofsOf(api),
    });
    expect(verdict.allowed).toBe(true);
    expect(verdict.auditAnnotations.plan).toBe(PLAN.digest);
  });

  it('keeps every other rule: not the user, not expired, one approver counted once', async () => {
    const bob = await approve(issuer, 'deploy', api, { approver: 'bob@example.com' });
    const self = await create(api, {
      'approval.twokey.dev/bob': bob,
      'approval.twokey.dev/me': await planApproval('deployer@example.com'),
      [KEY]: proofsOf(api),
    });
    expect(self.allowed).toBe(false);
    expect(report(self, 'approval.twokey.dev/me')?.code).toBe('self');
    const twice = await create(api, {
      'approval.twokey.dev/bob': bob,
      'approval.twokey.dev/bob-plan': await planApproval('bob@example.com'),
      [KEY]: proofsOf(api),
    });
    expect(twice.allowed).toBe(false);
    const expired = await create(api, {
      'approval.twokey.dev/bob': bob,
      'approval.twokey.dev/carol': await planApproval('carol@example.com', { issuedAt: NOW - 7200 }),
      [KEY]: proofsOf(api),
    });
    expect(report(expired, 'approval.twokey.dev/carol')?.code).toBe('expired');
  });

  it('does not change the deploy digest, and adding proofs alone is not a deploy', async () => {
    const annotated = withAnnotations(api, { [KEY]: proofsOf(api), 'approval.twokey.dev/bob': 'x' });
    expect(bindingFor('deploy', annotated)).toEqual(bindingFor('deploy', api));
    const verdict = await decide(request({ operation: 'UPDATE', object: annotated, oldObject: api }), ctx());
    expect(verdict.allowed).toBe(true);
    expect(verdict.action).toBeUndefined();
  });
});

type PlanCase = [name: string, object: JsonObject, annotations: () => Promise<Record<string, string>>, code: string, detail?: RegExp];

const otherPlan = planTree([entryOf('deploy', api), entryOf('deploy', worker)]);
const changedApi = deployment({ labels: critical, image: 'registry.example.com/api:6.6.6' });
const stranger = deployment({ name: 'stranger', labels: critical });

const cases: PlanCase[] = [
  ['the proof of another entry of the plan', api, async () => ({ [KEY]: proofsOf(worker) }), 'binding', /does not prove this deploy/],
  ['a proof moved to another object', worker, async () => ({ [KEY]: proofsOf(api) }), 'binding', /does not prove this deploy/],
  [
    'an object changed after the plan (its digest differs)',
    changedApi,
    async () => ({ [KEY]: proofsOf(api) }),
    'binding',
    /not the one planned/,
  ],
  ['an object the plan does not hold, without a proof', stranger, async () => ({}), 'binding', /carries no proof/],
  ['an object the plan does not hold, with a proof of a planned object', stranger, async () => ({ [KEY]: proofsOf(api) }), 'binding'],
  [
    'a token that says more entries than the plan holds',
    api,
    async () => ({ carol: await planApproval('carol@example.com', { entries: 4 }), [KEY]: proofsOf(api) }),
    'proof',
    /of 4 entries.*a plan of 3/,
  ],
  ['a proof that says another size (a tree of other entries)', api, async () => ({ [KEY]: proofsOf(api, { size: 4 }) }), 'proof'],
  [
    'a token of another plan, with that plan proven under this plan key',
    api,
    async () => ({
      carol: await planApproval('carol@example.com', { plan: otherPlan.digest, entries: 2 }),
      [proofAnnotationKey(otherPlan.digest)]: proofsOf(api),
    }),
    'proof',
    /holds the proof of plan/,
  ],
  [
    'two proofs of the same leaf',
    api,
    async () => ({ [KEY]: proofsOf(api, { proofs: [PLAN.proof(indexOf(api)), PLAN.proof(indexOf(api))] }) }),
    'proof',
    /two proofs of leaf/,
  ],
  [
    'more proofs than an object has entries',
    api,
    async () => ({ [KEY]: proofsOf(api, { proofs: [0, 1, 2, 0].map((i) => ({ index: i, path: [] })) }) }),
    'proof',
  ],
  [
    'a path longer than any plan of 10,000 entries leaves',
    api,
    async () => ({ [KEY]: proofsOf(api, { proofs: [{ index: indexOf(api), path: Array(15).fill('a'.repeat(64)) }] }) }),
    'proof',
    /at most 14/,
  ],
  [
    'a proof annotation larger than any proof',
    api,
    async () => ({ [KEY]: `${proofsOf(api).slice(0, -1)},"pad":"${'x'.repeat(5000)}"}` }),
    'proof',
    /larger than/,
  ],
  [
    'duplicate members in the proof annotation',
    api,
    async () => ({ [KEY]: `{"plan":"${PLAN.digest}","size":99,${proofsOf(api).slice(1)}` }),
    'proof',
    /I-JSON/,
  ],
  ['a proof annotation that is not JSON', api, async () => ({ [KEY]: 'sha256:zzz' }), 'proof', /not I-JSON/],
  [
    'a token that claims more entries than any plan may hold',
    api,
    async () => ({ carol: rawToken(issuer, { payload: planClaims({ entries: MAX_PLAN_ENTRIES + 1 }) }), [KEY]: proofsOf(api) }),
    'claims',
  ],
  [
    'a plan token of an unknown version',
    api,
    async () => ({ carol: rawToken(issuer, { payload: planClaims({ v: 3 }) }), [KEY]: proofsOf(api) }),
    'claims',
  ],
  [
    'a plan token that also binds one object (another one)',
    api,
    async () => ({ carol: rawToken(issuer, { payload: planClaims({ ...bindingFor('deploy', worker) }) }), [KEY]: proofsOf(api) }),
    'claims',
  ],
  [
    'a plan digest that is no digest',
    api,
    async () => ({
      carol: rawToken(issuer, { payload: planClaims({ plan: `sha256:${PLAN.digest.slice(7, 39)}` }) }),
      [KEY]: proofsOf(api),
    }),
    'claims',
  ],
];

describe('plan approvals that must not count', () => {
  it.each(cases)('%s', async (_name, object, annotations, code, detail) => {
    const { carol, ...rest } = await annotations();
    const verdict = await create(object, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', object, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': carol ?? (await planApproval('carol@example.com')),
      ...rest,
    });
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toMatch(/1 of 2 required approvals/);
    const carolReport = report(verdict, 'approval.twokey.dev/carol');
    expect(carolReport?.code).toBe(code);
    if (detail) expect(carolReport?.detail).toMatch(detail);
    expect(verdict.message).toContain('approval.twokey.dev/carol');
  });
});

describe('the plan marker', () => {
  const marked = withAnnotations(api, { 'twokey.dev/plan': 'true' });

  it('admits a dry run without approvals, telling the digest of each aspect', async () => {
    const verdict = await create(marked, {}, { dryRun: true });
    expect(verdict.allowed).toBe(true);
    expect(verdict.warnings).toEqual([`twokey plan: deploy deployments.apps payments/api ${bindingFor('deploy', api).digest}`]);
  });

  it('tells both digests of a deploy that also hands the workload to an owner', async () => {
    const owner = { apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: 'u1' };
    const next = withAnnotations(
      { ...changedApi, metadata: { ...(changedApi.metadata as JsonObject), ownerReferences: [owner] } },
      {
        'twokey.dev/plan': '',
      },
    );
    const verdict = await decide(request({ operation: 'UPDATE', object: next, oldObject: api, dryRun: true }), ctx());
    expect(verdict.allowed).toBe(true);
    expect(verdict.warnings.map((w) => w.split(' ').slice(0, 3).join(' '))).toEqual(['twokey plan: deploy', 'twokey plan: unprotect']);
  });

  it('changes nothing for what twokey cannot judge, nor for what is not gated', async () => {
    const invalidUser = await create(marked, {}, { dryRun: true, user: 'bob\u200b@example.com' });
    expect(invalidUser.allowed).toBe(false);
    expect(invalidUser.message).toMatch(/cannot judge/);
    const plain = withAnnotations(deployment({ name: 'plain' }), { 'twokey.dev/plan': 'true' });
    const notGated = await decide(
      request({
        operation: 'CREATE',
        object: { ...plain, metadata: { ...(plain.metadata as JsonObject), namespace: 'sandbox' } },
        dryRun: true,
      }),
      ctx(),
    );
    expect(notGated.allowed).toBe(true);
    expect(notGated.warnings).toEqual([]);
  });

  it('never admits a real write', async () => {
    const verdict = await create(marked, {});
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toMatch(/0 of 2 required approvals/);
  });
});
