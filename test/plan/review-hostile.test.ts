/**
 * What approvers review against what a plan approval approves. A plan document is made by whoever
 * plans the change; its entries are what the tokens bind, its objects and diffs what people read.
 * A document whose entries are not what its objects show (an entry no object shows, a digest other
 * than that of the object it carries after the apply, a diff of other objects) is refused by
 * `twokey approve --plan` before anything is signed, and `attachApprovals` writes nothing for a
 * plan whose entries changed after it was approved.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { deploySpec, digestOf } from '../../src/change/digest.ts';
import type { JsonObject } from '../../src/json.ts';
import { attachApprovals } from '../../src/manifests/attach.ts';
import { objectDiff } from '../../src/plan/diff.ts';
import { type PlanDocument, type PlannedObject, planDocument } from '../../src/plan/document.ts';
import type { PlanEntry } from '../../src/plan/entries.ts';
import { planApproveArgs } from '../control-plane/commands.ts';
import { twokey } from '../support/cli.ts';
import { CLUSTER, deployment, ISSUER, type Issuer, makeIssuer } from '../support/world.ts';

let dir: string;
let issuer: Issuer;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'twokey-review-'));
  issuer = await makeIssuer();
  await writeFile(join(dir, 'change.jwk.json'), JSON.stringify(issuer.privateJwk));
});

const target = { resource: 'deployments.apps', namespace: 'payments', name: 'api' };
const live = deployment({ ...target, image: 'registry.example.com/api:1.0', labels: { 'twokey.dev/critical': 'true' } });
const reviewed = deployment({ ...target, image: 'registry.example.com/api:1.1', labels: { 'twokey.dev/critical': 'true' } });
const label = 'deployments.apps payments/api';
const deployOf = (object: JsonObject): PlanEntry => ({
  action: 'deploy',
  ...target,
  digest: digestOf({ ...target, action: 'deploy', spec: deploySpec(object) }),
});

/** The object as `twokey plan --server` writes it for the reviewed change. */
const shown = (overrides: Partial<PlannedObject> = {}): PlannedObject => ({
  ...target,
  actions: ['deploy'],
  operation: 'update',
  source: 'rendered.yaml, document 1',
  diff: objectDiff(label, live, reviewed),
  before: live,
  after: reviewed,
  uid: 'uid-api',
  note: 'gated: deploy',
  ...overrides,
});

/** `twokey approve --plan` of this document. */
async function approvePlan(document: unknown) {
  const file = join(dir, `plan-${Math.random().toString(36).slice(2)}.json`);
  await writeFile(file, JSON.stringify(document));
  return twokey(
    planApproveArgs(join(dir, 'change.jwk.json'), ISSUER, CLUSTER, { plan: file, approver: 'bob@example.com', change: 'CHG-1' }),
  );
}

describe('twokey approve --plan', () => {
  it('signs a plan whose entries are what its objects show, and lists them', async () => {
    const approved = await approvePlan(planDocument([deployOf(reviewed)], [shown()], 'cluster'));
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stderr).toContain(`approving plan sha256:`);
    expect(approved.stderr).toContain(`  deploy deployments.apps payments/api ${deployOf(reviewed).digest}`);
  });

  it('refuses an entry no object of the plan shows (a delete of the namespace slipped in)', async () => {
    const hidden: PlanEntry = {
      action: 'delete',
      resource: 'namespaces',
      namespace: '',
      name: 'payments',
      digest: digestOf({ resource: 'namespaces', namespace: '', name: 'payments', action: 'delete', uid: 'uid-payments' }),
    };
    const refused = await approvePlan(planDocument([deployOf(reviewed), hidden], [shown()], 'cluster'));
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain('the delete of namespaces payments is an entry, but no object of the plan shows it');
  });

  it('refuses an entry whose digest is not that of the object the plan shows after the apply (a spliced digest)', async () => {
    const evil = deployment({ ...target, image: 'evil.example.com/miner:1', labels: { 'twokey.dev/critical': 'true' } });
    const refused = await approvePlan(planDocument([deployOf(evil)], [shown()], 'cluster'));
    expect(refused.code).not.toBe(0);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toContain(
      `the deploy of deployments.apps payments/api: its digest ${deployOf(evil).digest} is not that of the object the plan shows after the apply (${deployOf(reviewed).digest})`,
    );
    // Nor can the object carry the evil spec behind a diff of the reviewed one.
    const behindDiff = await approvePlan(planDocument([deployOf(evil)], [shown({ after: evil })], 'cluster'));
    expect(behindDiff.code).not.toBe(0);
    expect(behindDiff.stderr).toContain(
      'deployments.apps payments/api: its diff is not that of the objects the plan shows before and after the apply',
    );
  });

  it('refuses an object shown as gated without its entry, an object twice, and an entry whose object carries nothing to check', async () => {
    const entry = deployOf(reviewed);
    const noEntry = await approvePlan(
      planDocument([entry], [shown(), { ...shown(), name: 'web', diff: '', before: undefined, after: reviewed }], 'cluster'),
    );
    expect(noEntry.stderr).toContain('deployments.apps payments/web is shown as a deploy, but the plan has no such entry');
    const twice = await approvePlan(planDocument([entry], [shown(), shown()], 'cluster'));
    expect(twice.stderr).toContain('deployments.apps payments/api is listed twice');
    const { after: _after, ...bare } = shown();
    const unchecked = await approvePlan(planDocument([entry], [bare], 'cluster'));
    expect(unchecked.stderr).toContain('its object does not carry the object after the apply, so its digest cannot be checked');
    for (const result of [noEntry, twice, unchecked]) expect(result.code).not.toBe(0);
  });
});

describe('what a plan shows of its objects', () => {
  it('refuses an after or before of another object, a plan against the cluster without its diff, and a deploy of the live spec', async () => {
    const entry = deployOf(reviewed);
    const web = deployment({ ...target, name: 'web', image: 'registry.example.com/api:1.1', labels: { 'twokey.dev/critical': 'true' } });
    const renamed = await approvePlan(planDocument([entry], [shown({ after: web, diff: objectDiff(label, live, web) })], 'cluster'));
    expect(renamed.stderr).toContain('the deploy of deployments.apps payments/api: its object after the apply is named "web"');
    const { diff: _diff, ...noDiff } = shown();
    const hidden = await approvePlan(planDocument([entry], [noDiff], 'cluster'));
    expect(hidden.stderr).toContain('deployments.apps payments/api: it carries no diff, though the plan was made against the cluster');
    const unchanged = await approvePlan(planDocument([entry], [shown({ before: reviewed, diff: '' })], 'cluster'));
    expect(unchanged.stderr).toContain('the deploy of deployments.apps payments/api: its live object already has that spec');
    for (const result of [renamed, hidden, unchanged]) expect(result.code).not.toBe(0);
  });

  it('shows in the diff what invisible and reordering characters hide', () => {
    const tricky = deployment({ ...target, image: 'registry.example.com/api:1.1\u202E1:rekam\u200B' });
    const diff = objectDiff(label, live, tricky);
    expect(diff).toContain('\\u202E1:rekam\\u200B');
    expect(diff).not.toMatch(/[\u202E\u200B]/);
  });

  it('takes objects twokey does not gate as they are, even named twice', async () => {
    const configMap = (source: string): PlannedObject => ({
      resource: 'configmaps',
      namespace: 'payments',
      name: 'settings',
      actions: [],
      operation: 'update',
      source,
      note: 'not gated: twokey gates no such kind',
    });
    const approved = await approvePlan(planDocument([deployOf(reviewed)], [shown(), configMap('a.yaml'), configMap('b.yaml')], 'cluster'));
    expect(approved.code, approved.stderr).toBe(0);
  });
});

describe('attachApprovals', () => {
  it('writes nothing for a plan whose entries changed after it was approved', () => {
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const token = (sub: string, plan: string) =>
      `${b64({ alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'k' })}.${b64({ iss: ISSUER, aud: CLUSTER, sub, twokey: { v: 2, change: 'CHG-1', plan, entries: 1 } })}.c2ln`;
    const approved = planDocument([deployOf(reviewed)], [shown()], 'cluster');
    const changed: PlanDocument = { ...approved, entries: [{ ...deployOf(reviewed), digest: `sha256:${'2'.repeat(64)}` }] };
    expect(() =>
      attachApprovals({
        text: 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  namespace: payments\nspec: {}\n',
        source: 'rendered.yaml',
        plan: changed,
        approvals: [
          { source: 'bob', token: token('bob@example.com', approved.digest) },
          { source: 'carol', token: token('carol@example.com', approved.digest) },
        ],
      }),
    ).toThrow(/its entries changed after it was approved/);
  });
});
