/**
 * The rules of one feature under another's: a plan approval countersigned as an approval of one
 * object is, and uncounted without its countersignature in countersign mode; a break-glass token
 * never countersigned, yet never the (mapped) user's own; break-glass past a quorum rule's groups,
 * and warn mode saying which groups it would have refused for.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConfigSnapshot } from '../../src/config/store.ts';
import { decide } from '../../src/decision/decide.ts';
import type { JsonObject } from '../../src/json.ts';
import { mintPlanApproval } from '../../src/keys/signing.ts';
import { encodeProofs, planTree, proofAnnotationKey } from '../../src/plan/entries.ts';
import {
  type Approver,
  approvalAnnotations,
  approve,
  BREAK_GLASS_ISSUER,
  BREAK_GLASS_POLICY,
  bindingFor,
  breakGlass,
  CLUSTER,
  countersigned,
  deployment,
  type Issuer,
  makeApprover,
  makeIssuer,
  makePolicy,
  makeRegistrySnapshot,
  NOW,
  offlineContext,
  registryEntry,
  request,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let glass: Issuer;
let bob: Approver;
let carol: Approver;
let dave: Approver;

const critical = { 'twokey.dev/critical': 'true' };
const api = deployment({ labels: critical });
const worker = deployment({ name: 'worker', labels: critical, image: 'registry.example.com/worker:1.0.0' });
const PLAN = planTree([bindingFor('deploy', api), bindingFor('deploy', worker)]);
const PROOFS = {
  [proofAnnotationKey(PLAN.digest)]: encodeProofs({
    plan: PLAN.digest,
    size: PLAN.entries.length,
    proofs: [PLAN.proof(PLAN.entries.findIndex((e) => e.name === 'api'))],
  }),
};

beforeAll(async () => {
  issuer = await makeIssuer();
  glass = await makeIssuer(BREAK_GLASS_ISSUER, 'EdDSA', 'glass-1');
  [bob, carol, dave] = await Promise.all([
    makeApprover('bob@example.com'),
    makeApprover('carol@example.com'),
    makeApprover('dave@example.com'),
  ]);
});

const planApproval = (approver: string) =>
  mintPlanApproval({
    privateJwk: issuer.privateJwk,
    issuer: issuer.issuer,
    audience: CLUSTER,
    approver,
    change: 'CHG0031337',
    plan: PLAN.digest,
    entries: PLAN.entries.length,
    ttlSeconds: 3600,
    now: NOW - 60,
  });

const judge = (snapshot: ConfigSnapshot, annotations: Record<string, string>, user = 'deployer@example.com', object: JsonObject = api) =>
  decide(request({ operation: 'CREATE', object: withAnnotations(object, annotations), user }), offlineContext(snapshot));

const glassToken = (approver: string, object: JsonObject = api) => breakGlass(glass, [bindingFor('deploy', object)], { approver });

describe('countersigned plan approvals', () => {
  let snapshot: ConfigSnapshot;
  beforeAll(async () => {
    const policy = makePolicy({ approvals: { countersign: true }, approvers: [registryEntry(bob), registryEntry(carol)] });
    snapshot = await makeRegistrySnapshot([issuer], policy);
  });

  it('admits an object with two plan approvals, each countersigned by its approver, and the proof of its entry', async () => {
    const tokens = {
      bob: await countersigned(bob, await planApproval(bob.identity)),
      carol: await countersigned(carol, await planApproval(carol.identity)),
    };
    const verdict = await judge(snapshot, { ...approvalAnnotations(tokens), ...PROOFS });
    expect(verdict.message).toBeUndefined();
    expect(verdict.allowed).toBe(true);
    expect(verdict.approvers).toEqual(['bob@example.com', 'carol@example.com']);
  });

  it('does not count a plan approval without its countersignature, nor one countersigned by another approver', async () => {
    const bobs = await countersigned(bob, await planApproval(bob.identity));
    const bare = await judge(snapshot, { ...approvalAnnotations({ bob: bobs, carol: await planApproval(carol.identity) }), ...PROOFS });
    expect(bare.allowed).toBe(false);
    expect(bare.approvals.find((a) => a.key === 'approval.twokey.dev/carol')).toMatchObject({
      code: 'countersignature',
      detail: expect.stringMatching(/is a compact JWS/),
    });
    const byBob = await countersigned(bob, await planApproval(carol.identity));
    const other = await judge(snapshot, { ...approvalAnnotations({ bob: bobs, carol: byBob }), ...PROOFS });
    expect(other.allowed).toBe(false);
    expect(other.approvals.find((a) => a.key === 'approval.twokey.dev/carol')).toMatchObject({ code: 'countersignature' });
  });

  it('still needs the proof of the entry: a countersignature binds no object by itself', async () => {
    const tokens = {
      bob: await countersigned(bob, await planApproval(bob.identity)),
      carol: await countersigned(carol, await planApproval(carol.identity)),
    };
    const verdict = await judge(snapshot, approvalAnnotations(tokens));
    expect(verdict.allowed).toBe(false);
  });
});

describe('break-glass with the rules beyond a count', () => {
  it('is not countersigned in countersign mode: one approver, by design', async () => {
    const policy = makePolicy({ approvals: { countersign: true }, approvers: [registryEntry(bob)], breakGlass: BREAK_GLASS_POLICY });
    const snapshot = await makeRegistrySnapshot([issuer, glass], policy);
    const verdict = await judge(snapshot, { 'twokey.dev/break-glass': await glassToken('dave@example.com') });
    expect(verdict.allowed).toBe(true);
    expect(verdict.breakGlass).toMatchObject({ status: 'counted', approver: 'dave@example.com' });
  });

  it('does not count a token whose approver is the user as the identities rules map it', async () => {
    const policy = makePolicy({ identities: { rules: [{ stripPrefix: 'oidc:' }] }, breakGlass: BREAK_GLASS_POLICY });
    const snapshot = await makeRegistrySnapshot([issuer, glass], policy);
    const mapped = await judge(snapshot, { 'twokey.dev/break-glass': await glassToken('dave') }, 'oidc:dave');
    expect(mapped.allowed).toBe(false);
    expect(mapped.breakGlass).toMatchObject({ status: 'not-counted', code: 'self', approver: 'dave' });
    // The user name as Kubernetes wrote it is the user too, as it is for the quorum.
    const raw = await judge(snapshot, { 'twokey.dev/break-glass': await glassToken('oidc:dave') }, 'oidc:dave');
    expect(raw.breakGlass).toMatchObject({ status: 'not-counted', code: 'self' });
    const other = await judge(snapshot, { 'twokey.dev/break-glass': await glassToken('erin') }, 'oidc:dave');
    expect(other.allowed).toBe(true);
  });

  it("lets a change through without the groups the quorum rule asks for: it is loud, and the rule's bypass", async () => {
    const policy = makePolicy({
      approvals: { rules: [{ required: 2, groups: [{ group: 'sre', atLeast: 1 }] }] },
      approvers: [registryEntry(bob, ['sre']), registryEntry(carol, ['dev']), registryEntry(dave, ['dev'])],
      breakGlass: BREAK_GLASS_POLICY,
    });
    const snapshot = await makeRegistrySnapshot([issuer, glass], policy);
    const annotations = {
      ...approvalAnnotations({
        carol: await approve(issuer, 'deploy', api, { approver: carol.identity }),
        dave: await approve(issuer, 'deploy', api, { approver: dave.identity }),
      }),
    };
    expect((await judge(snapshot, annotations)).allowed).toBe(false);
    const verdict = await judge(snapshot, { ...annotations, 'twokey.dev/break-glass': await glassToken('erin@example.com') });
    expect(verdict.allowed).toBe(true);
    expect(verdict.breakGlass).toMatchObject({ status: 'counted' });
  });
});

describe('warn mode with approver groups', () => {
  it('admits, saying that it would refuse for the groups still missing', async () => {
    const policy = makePolicy({
      mode: 'warn',
      approvals: { rules: [{ required: 2, groups: [{ group: 'sre', atLeast: 1 }] }] },
      approvers: [registryEntry(bob, ['sre']), registryEntry(carol, ['dev']), registryEntry(dave, ['dev'])],
    });
    const snapshot = await makeRegistrySnapshot([issuer], policy);
    const verdict = await judge(
      snapshot,
      approvalAnnotations({
        carol: await approve(issuer, 'deploy', api, { approver: carol.identity }),
        dave: await approve(issuer, 'deploy', api, { approver: dave.identity }),
      }),
    );
    expect(verdict.allowed).toBe(true);
    expect(verdict.wouldRefuse).toBe('policy');
    const missing = 'still missing: 1 more approval from group "sre" (0 of 1)';
    expect(verdict.auditAnnotations['would-refuse']).toContain(missing);
    expect(verdict.summary).toContain(missing);
  });
});
