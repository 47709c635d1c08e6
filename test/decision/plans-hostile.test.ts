/**
 * Plan approvals against an agent that holds one approver's plan token (or has seen the tokens and
 * proofs of other objects) and may write any annotation: each case stands next to one valid
 * approval, so the request is admitted only if the plan approval wrongly counts as the second.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { Action } from '../../src/change/digest.ts';
import { decide } from '../../src/decision/decide.ts';
import type { Decision } from '../../src/decision/wording.ts';
import type { JsonObject } from '../../src/json.ts';
import { mintPlanApproval } from '../../src/keys/signing.ts';
import { encodeProofs, entryLeaf, type PlanEntry, type PlanTree, planTree, proofAnnotationKey } from '../../src/plan/entries.ts';
import { leafHash, treeHash, verifyInclusion } from '../../src/plan/merkle.ts';
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
  namespaceObject,
  offlineContext,
  request,
  withAnnotations,
  withLabels,
  withOwners,
} from '../support/world.ts';

let issuer: Issuer;
let snapshot: Awaited<ReturnType<typeof makeSnapshot>>;

beforeAll(async () => {
  issuer = await makeIssuer();
  snapshot = await makeSnapshot([issuer]);
});

const ctx = () => offlineContext(snapshot);
const critical = { 'twokey.dev/critical': 'true' };
const api = deployment({ labels: critical });
const entryOf = (action: Action, object: JsonObject): PlanEntry => bindingFor(action, object);

const planApproval = (tree: PlanTree, approver = 'carol@example.com', entries = tree.entries.length) =>
  mintPlanApproval({
    privateJwk: issuer.privateJwk,
    issuer: issuer.issuer,
    audience: CLUSTER,
    approver,
    change: 'CHG0031337',
    plan: tree.digest,
    entries,
    ttlSeconds: 3600,
    now: NOW - 60,
  });

/** The proof annotation of `tree` for the entries of `tree` at `indexes`. */
const proofs = (tree: PlanTree, indexes: number[], overrides: Record<string, unknown> = {}) => ({
  [proofAnnotationKey(tree.digest)]: encodeProofs({
    plan: tree.digest,
    size: tree.entries.length,
    proofs: indexes.map((i) => tree.proof(i)),
    ...overrides,
  }),
});
const indexIn = (tree: PlanTree, entry: PlanEntry) => tree.entries.findIndex((e) => JSON.stringify(e) === JSON.stringify({ ...entry }));

const carolOf = (verdict: Decision) => verdict.approvals.find((a) => a.key === 'approval.twokey.dev/carol');

/** Judges the request with bob's single-object approval of `action` on `approvalsOn` and carol's plan token. */
async function judged(
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  objects: { object?: JsonObject; oldObject?: JsonObject },
  action: Action,
  carol: string,
  annotations: Record<string, string>,
): Promise<Decision> {
  const on = operation === 'DELETE' ? (objects.oldObject as JsonObject) : (objects.object as JsonObject);
  const bob = await approve(issuer, action, on, { approver: 'bob@example.com' });
  const annotated = withAnnotations(on, { 'approval.twokey.dev/bob': bob, 'approval.twokey.dev/carol': carol, ...annotations });
  return decide(
    request({
      operation,
      ...(operation === 'DELETE'
        ? { oldObject: annotated }
        : { object: annotated, ...(objects.oldObject ? { oldObject: objects.oldObject } : {}) }),
    }),
    ctx(),
  );
}

const admitted = (verdict: Decision) => {
  expect(verdict.message).toBeUndefined();
  expect(verdict.allowed).toBe(true);
  expect(verdict.approvers).toEqual(['bob@example.com', 'carol@example.com']);
};
const refused = (verdict: Decision, code: string) => {
  expect(verdict.allowed).toBe(false);
  expect(carolOf(verdict)?.code).toBe(code);
};

describe('a plan approval with the proof of an entry, moved elsewhere', () => {
  const tree = planTree([entryOf('deploy', api), entryOf('deploy', deployment({ name: 'cart', labels: critical }))]);
  const apiProof = () => proofs(tree, [indexIn(tree, entryOf('deploy', api))]);

  it('counts on the planned object', async () => {
    admitted(await judged('CREATE', { object: api }, 'deploy', await planApproval(tree), apiProof()));
  });

  it.each([
    ['another namespace', deployment({ namespace: 'checkout', labels: critical })],
    ['another name', deployment({ name: 'api-2', labels: critical })],
    ['another resource (a StatefulSet of the same name and spec)', { ...api, kind: 'StatefulSet' }],
  ])('does not count on an object of %s with the same spec', async (_name, object) => {
    refused(await judged('CREATE', { object }, 'deploy', await planApproval(tree), apiProof()), 'binding');
  });

  it('does not count on a later change of the same object', async () => {
    const next = deployment({ labels: critical, image: 'registry.example.com/api:2.0.0' });
    refused(await judged('UPDATE', { object: next, oldObject: api }, 'deploy', await planApproval(tree), apiProof()), 'binding');
  });

  it('does not count for the delete of the object whose deploy it planned', async () => {
    refused(await judged('DELETE', { oldObject: api }, 'delete', await planApproval(tree), apiProof()), 'binding');
  });
});

describe('a plan approval and the action of the entry proven', () => {
  it('a plan of the unprotect counts for the unprotect, not for a deploy', async () => {
    // In a namespace that is not critical, removing the label is an unprotect.
    const old = deployment({ namespace: 'team-a', labels: critical });
    const unlabelled = withLabels(old, { 'twokey.dev/critical': undefined });
    const tree = planTree([entryOf('unprotect', unlabelled), entryOf('deploy', deployment({ name: 'x', labels: critical }))]);
    const proof = proofs(tree, [indexIn(tree, entryOf('unprotect', unlabelled))]);
    admitted(await judged('UPDATE', { object: unlabelled, oldObject: old }, 'unprotect', await planApproval(tree), proof));

    // The same update with a new image is a deploy too: the plan holds no deploy, so that aspect stays refused.
    const changed = withLabels(deployment({ namespace: 'team-a', image: 'registry.example.com/api:2.0.0' }), {});
    const both = await decide(
      request({
        operation: 'UPDATE',
        oldObject: old,
        object: withAnnotations(changed, {
          'approval.twokey.dev/bob-deploy': await approve(issuer, 'deploy', changed, { approver: 'bob@example.com' }),
          'approval.twokey.dev/bob-unprotect': await approve(issuer, 'unprotect', changed, { approver: 'bob@example.com' }),
          'approval.twokey.dev/carol': await planApproval(tree),
          ...proof,
        }),
      }),
      ctx(),
    );
    expect(both.allowed).toBe(false);
    expect(both.action).toBe('deploy+unprotect');
    expect(both.aspects.map((a) => [a.action, a.allowed])).toEqual([
      ['deploy', false],
      ['unprotect', true],
    ]);
  });

  it('a plan of an owner handover approves that owner only', async () => {
    const owner = { apiVersion: 'v1', kind: 'ConfigMap', name: 'tenant', uid: 'uid-tenant' };
    const owned = withOwners(api, [owner]);
    const tree = planTree([entryOf('unprotect', owned)]);
    const proof = proofs(tree, [0]);
    admitted(await judged('UPDATE', { object: owned, oldObject: api }, 'unprotect', await planApproval(tree), proof));
    const other = withOwners(api, [{ ...owner, uid: 'uid-of-another' }]);
    refused(await judged('UPDATE', { object: other, oldObject: api }, 'unprotect', await planApproval(tree), proof), 'binding');
  });

  it("a plan of a Namespace's deletion binds its uid: the same name recreated is not approved", async () => {
    const payments = namespaceObject('payments');
    const tree = planTree([entryOf('delete', payments), entryOf('deploy', api)]);
    const proof = proofs(tree, [indexIn(tree, entryOf('delete', payments))]);
    admitted(await judged('DELETE', { oldObject: payments }, 'delete', await planApproval(tree), proof));
    const recreated = namespaceObject('payments', { uid: 'uid-payments-2' });
    refused(await judged('DELETE', { oldObject: recreated }, 'delete', await planApproval(tree), proof), 'binding');
    // Nor does the plan's deploy entry, proven on the Namespace, approve its deletion.
    const deployProof = proofs(tree, [indexIn(tree, entryOf('deploy', api))]);
    refused(await judged('DELETE', { oldObject: payments }, 'delete', await planApproval(tree), deployProof), 'binding');
  });
});

describe('plan trees of every shape', () => {
  const objects = Array.from({ length: 9 }, (_, i) =>
    deployment({ name: `app-${i}`, labels: critical, image: `registry.example.com/app:${i}` }),
  );

  it.each([1, 2, 3, 5, 6, 7, 9])('a plan of %i entries: each object counts with its own proof, at its own index only', async (size) => {
    const planned = objects.slice(0, size);
    const tree = planTree(planned.map((o) => entryOf('deploy', o)));
    const token = await planApproval(tree);
    for (const object of planned) {
      const index = indexIn(tree, entryOf('deploy', object));
      admitted(await judged('CREATE', { object }, 'deploy', token, proofs(tree, [index])));
      if (size === 1) continue;
      // The right path under a neighbour's index, and a neighbour's proof as it is: neither proves this entry.
      const neighbour = (index + 1) % size;
      const path = tree.proof(index).path;
      refused(await judged('CREATE', { object }, 'deploy', token, proofs(tree, [], { proofs: [{ index: neighbour, path }] })), 'binding');
      refused(await judged('CREATE', { object }, 'deploy', token, proofs(tree, [neighbour])), 'binding');
    }
    // An object the plan does not hold, with every planned object's proof: still not in it.
    const stranger = objects[8] === planned.at(-1) ? deployment({ name: 'stranger', labels: critical }) : (objects[8] as JsonObject);
    const all = planned.map((o) => indexIn(tree, entryOf('deploy', o))).slice(0, 3);
    refused(await judged('CREATE', { object: stranger }, 'deploy', token, proofs(tree, all)), 'binding');
  });

  it('the last leaf of an odd tree: its path has one hash fewer, and a padded path does not verify', async () => {
    const tree = planTree(objects.slice(0, 5).map((o) => entryOf('deploy', o)));
    const last = tree.entries.length - 1;
    expect(tree.proof(last).path).toHaveLength(1);
    const object = objects.find((o) => indexIn(tree, entryOf('deploy', o)) === last) as JsonObject;
    const token = await planApproval(tree);
    admitted(await judged('CREATE', { object }, 'deploy', token, proofs(tree, [last])));
    const padded = { index: last, path: [...tree.proof(last).path, tree.proof(0).path[0] as string] };
    refused(await judged('CREATE', { object }, 'deploy', token, proofs(tree, [], { proofs: [padded] })), 'binding');
    const short = { index: last, path: [] };
    refused(await judged('CREATE', { object }, 'deploy', token, proofs(tree, [], { proofs: [short] })), 'binding');
  });

  it('a token that says another size than the plan has counts with no proof, even one written for that size', async () => {
    // Five entries; a token of the same digest that says four (a signer's slip, or a forged size).
    const tree = planTree(objects.slice(0, 5).map((o) => entryOf('deploy', o)));
    const object = objects.find((o) => indexIn(tree, entryOf('deploy', o)) === 4) as JsonObject;
    const token = await planApproval(tree, 'carol@example.com', 4);
    for (const index of [0, 1, 2, 3]) {
      for (const path of [
        tree.proof(4).path,
        tree.proof(index).path,
        [treeHash(tree.entries.slice(0, 4).map(entryLeaf)).toString('hex')],
      ]) {
        const verdict = await judged('CREATE', { object }, 'deploy', token, proofs(tree, [], { size: 4, proofs: [{ index, path }] }));
        expect(verdict.allowed).toBe(false);
      }
    }
  });
});

describe('the hashes of leaves and nodes', () => {
  it('never lets a node pass for a leaf (0x00 and 0x01 apart)', () => {
    const leaves = [0, 1, 2, 3].map((i) => leafHash(Buffer.from(`entry ${i}`)));
    const root = treeHash(leaves);
    const node01 = treeHash(leaves.slice(0, 2));
    const node23 = treeHash(leaves.slice(2));
    // The node over leaves 0 and 1 is an inner node of the tree: as a leaf of a tree of two it would prove.
    expect(verifyInclusion(node01, 0, 2, [node23], root)).toBe(true);
    // But a leaf is always hashed with 0x00: data that is the two children is not that node.
    const forged = leafHash(Buffer.concat([leaves[0] as Buffer, leaves[1] as Buffer]));
    expect(forged.equals(node01)).toBe(false);
    expect(verifyInclusion(forged, 0, 2, [node23], root)).toBe(false);
    expect(verifyInclusion(forged, 0, 4, [leaves[1] as Buffer, node23], root)).toBe(false);
  });
});

describe('plan approvals that claim more than a plan', () => {
  const tree = planTree([entryOf('deploy', api)]);
  const planClaims = (twokey: Record<string, unknown>) => ({
    iss: issuer.issuer,
    aud: CLUSTER,
    sub: 'carol@example.com',
    iat: NOW - 60,
    exp: NOW + 3600,
    jti: `plan-${JSON.stringify(twokey).length}`,
    twokey: { v: 2, change: 'CHG0031337', plan: tree.digest, entries: 1, ...twokey },
  });

  it('a plan of one entry proves its only entry with an empty path', async () => {
    admitted(await judged('CREATE', { object: api }, 'deploy', rawToken(issuer, { payload: planClaims({}) }), proofs(tree, [0])));
  });

  it.each([
    ['the exact binding of this object besides the plan', () => ({ ...bindingFor('deploy', api) })],
    ['only the digest besides the plan', () => ({ digest: bindingFor('deploy', api).digest })],
    ['v as a string', () => ({ v: '2' })],
    ['v 1 (an approval of one object carries no v)', () => ({ v: 1, ...bindingFor('deploy', api) })],
    ['entries as a string', () => ({ entries: '1' })],
    ['entries 0', () => ({ entries: 0 })],
    ['entries that is not a whole number', () => ({ entries: 1.5 })],
    ['an uppercase plan digest', () => ({ plan: tree.digest.toUpperCase().replace('SHA256', 'sha256') })],
  ])('with %s: refused by its claims', async (_name, twokey) => {
    const token = rawToken(issuer, { payload: planClaims(twokey()) });
    refused(await judged('CREATE', { object: api }, 'deploy', token, proofs(tree, [0])), 'claims');
  });
});

describe('proof annotations on hostile ground', () => {
  const cart = deployment({ name: 'cart', labels: critical });
  const tree = planTree([entryOf('deploy', api), entryOf('deploy', cart)]);
  const key = proofAnnotationKey(tree.digest);
  const good = proofs(tree, [indexIn(tree, entryOf('deploy', api))])[key] as string;

  it.each([
    ['under the whole digest', `plan.twokey.dev/${tree.digest.slice(7)}`],
    ['under the digest in upper case', `plan.twokey.dev/${tree.digest.slice(7, 39).toUpperCase()}`],
    ['under a prefix one digit short', key.slice(0, -1)],
    ['under another prefix', `plans.twokey.dev/${tree.digest.slice(7, 39)}`],
    ['as an approval annotation', 'approval.twokey.dev/proof'],
  ])('a good proof %s is not read', async (_name, otherKey) => {
    refused(await judged('CREATE', { object: api }, 'deploy', await planApproval(tree), { [otherKey]: good }), 'binding');
  });

  it.each([
    ['nested 2,000 deep', `${'['.repeat(2000)}${']'.repeat(2000)}`],
    ['a proof nested in arrays', `{"plan":"${tree.digest}","size":2,"proofs":[[{"index":0,"path":[]}]]}`],
    ['an index as a string', good.replace(/"index":(\d)/, '"index":"$1"')],
    ['an index that is not whole', good.replace(/"index":(\d)/, '"index":$1.5')],
    ['a negative index', good.replace(/"index":(\d)/, '"index":-1')],
    ['an index past the plan', good.replace(/"index":(\d)/, '"index":2')],
    ['a size of 0', good.replace('"size":2', '"size":0')],
    ['a path of uppercase hex', good.replace(/"path":\["([0-9a-f]{64})"/, (_m, h: string) => `"path":["${h.toUpperCase()}"`)],
    ['a path hash cut short', good.replace(/"path":\["([0-9a-f]{64})"/, (_m, h: string) => `"path":["${h.slice(2)}"`)],
    ['a byte-order mark', `\uFEFF${good}`],
    ['a lone surrogate', good.replace('"proofs"', '"pad":"\\ud800","proofs"')],
    ['a non-finite number', good.replace('"size":2', '"size":1e400')],
    ['a duplicate plan member', good.replace('{"plan"', `{"plan":"${tree.digest}","plan"`)],
    ['4097 bytes', `${good.slice(0, -1)},"pad":"${'x'.repeat(4097 - good.length - 9)}"}`],
  ])('a proof annotation with %s is refused with a reason, never read in part', async (_name, value) => {
    const verdict = await judged('CREATE', { object: api }, 'deploy', await planApproval(tree), { [key]: value });
    expect(verdict.allowed).toBe(false);
    expect(['proof', 'binding']).toContain(carolOf(verdict)?.code);
    expect(carolOf(verdict)?.detail).toMatch(/plan/);
  });

  it("a token of a plan without this object, with another plan's proof of it under the token's plan key", async () => {
    // Of the same size, so that only the plan the proof names tells it apart.
    const without = planTree([entryOf('deploy', cart), entryOf('deploy', deployment({ name: 'ledger', labels: critical }))]);
    const moved = { [proofAnnotationKey(without.digest)]: good };
    refused(await judged('CREATE', { object: api }, 'deploy', await planApproval(without), moved), 'proof');
    // The proof with the token's plan and size written in: it proves nothing of that plan.
    const relabelled = { [proofAnnotationKey(without.digest)]: good.replace(tree.digest, without.digest) };
    const verdict = await judged('CREATE', { object: api }, 'deploy', await planApproval(without), relabelled);
    expect(verdict.allowed).toBe(false);
    expect(['proof', 'binding']).toContain(carolOf(verdict)?.code);
  });

  it('the same good proof, read as written, counts (only the flaw under test refused the others)', async () => {
    admitted(await judged('CREATE', { object: api }, 'deploy', await planApproval(tree), { [key]: good }));
  });

  it('fifty plan tokens of unknown plans cost one look each, and the request is still judged', async () => {
    const others = Array.from({ length: 50 }, (_, i) => planTree([entryOf('deploy', deployment({ name: `o-${i}`, labels: critical }))]));
    const annotations: Record<string, string> = {};
    for (const [i, other] of others.entries()) {
      annotations[`approval.twokey.dev/x-${String(i).padStart(2, '0')}`] = rawToken(issuer, {
        payload: {
          iss: issuer.issuer,
          aud: CLUSTER,
          sub: `x${i}@example.com`,
          iat: NOW - 60,
          exp: NOW + 3600,
          jti: `x-${i}`,
          twokey: { v: 2, change: 'CHG0031337', plan: other.digest, entries: 1 },
        },
        signWith: { kind: 'none' },
      });
      annotations[proofAnnotationKey(other.digest)] = `${'['.repeat(1000)}${']'.repeat(1000)}`;
    }
    const started = performance.now();
    const verdict = await judged('CREATE', { object: api }, 'deploy', await planApproval(tree), { ...annotations, [key]: good });
    expect(performance.now() - started).toBeLessThan(2000);
    // Sorted by key, bob and carol are read before the fifty others reach the limit.
    admitted(verdict);
  });
});

describe('one approver, two forms', () => {
  it('a plan token and an approval of one object by the same approver count once', async () => {
    const tree = planTree([entryOf('deploy', api)]);
    const verdict = await decide(
      request({
        operation: 'CREATE',
        object: withAnnotations(api, {
          'approval.twokey.dev/carol-one': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
          'approval.twokey.dev/carol-plan': await planApproval(tree, 'Carol@Example.com'),
          ...proofs(tree, [0]),
        }),
      }),
      ctx(),
    );
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toMatch(/1 of 2 required approvals/);
    expect(verdict.approvals.map((a) => a.code)).toContain('duplicate');
  });

  it('two plan tokens of one approver, for two plans that both hold the entry, count once', async () => {
    const one = planTree([entryOf('deploy', api)]);
    const two = planTree([entryOf('deploy', api), entryOf('deploy', deployment({ name: 'cart', labels: critical }))]);
    const verdict = await decide(
      request({
        operation: 'CREATE',
        object: withAnnotations(api, {
          'approval.twokey.dev/carol-1': await planApproval(one),
          'approval.twokey.dev/carol-2': await planApproval(two),
          ...proofs(one, [0]),
          ...proofs(two, [indexIn(two, entryOf('deploy', api))]),
        }),
      }),
      ctx(),
    );
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toMatch(/1 of 2 required approvals/);
  });
});
