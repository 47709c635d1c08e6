/**
 * The rules beyond a count, each with the hostile case that breaks it: identities as clusters name
 * them (self-approval behind a prefix, an ARN, a service account mapped onto an approver),
 * countersigned approvals (one key alone, a key of someone else, a countersignature moved to other
 * claims, an unknown key), and approver groups (a group claimed by a token instead of the registry).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConfigSnapshot } from '../../src/config/store.ts';
import { decide } from '../../src/decision/decide.ts';
import { tallyQuorum } from '../../src/decision/quorum.ts';
import { wouldRefuseReason } from '../../src/decision/verdict.ts';
import type { Identity } from '../../src/identity.ts';
import type { JsonObject } from '../../src/json.ts';
import { assertNoSharedKeys, loadApproverKeys } from '../../src/keys/approvers.ts';
import { importJwks } from '../../src/keys/jwks.ts';
import { mapUser } from '../../src/policy/identities.ts';
import { b64url, claims, rawToken } from '../support/tokens.ts';
import {
  type Approver,
  approvalAnnotations,
  approve,
  bindingFor,
  countersigned,
  deployment,
  type Issuer,
  makeApprover,
  makeIssuer,
  makePolicy,
  makeRegistrySnapshot,
  makeSnapshot,
  namespaceObject,
  offlineContext,
  registryEntry,
  request,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let bob: Approver;
let carol: Approver;
let dave: Approver;
const api = deployment();

beforeAll(async () => {
  issuer = await makeIssuer();
  [bob, carol, dave] = await Promise.all([
    makeApprover('bob@example.com'),
    makeApprover('carol@example.com'),
    makeApprover('dave@example.com'),
  ]);
});

const judge = (snapshot: ConfigSnapshot, annotations: Record<string, string>, user: string, object: JsonObject = api) =>
  decide(
    request({ operation: 'CREATE', object: withAnnotations(object, approvalAnnotations(annotations)), user }),
    offlineContext(snapshot),
  );

const token = (approver: string, options: { object?: JsonObject; change?: string } = {}) =>
  approve(issuer, 'deploy', options.object ?? api, { approver, ...(options.change ? { change: options.change } : {}) });

describe('identities: the Kubernetes user mapped onto approver identities', () => {
  const identities = {
    rules: [
      { stripPrefix: 'oidc:' },
      { awsAssumedRole: { accounts: ['123456789012'] } },
      { suffix: '.iam.gserviceaccount.com' },
      { suffix: '@example.com' },
      { exact: { 'system:serviceaccount:ci:agent': 'pipeline:deploy-bot' } },
    ],
  };
  const mapped = () => makeSnapshot([issuer], makePolicy({ identities }));

  it('without rules, a self-approval behind the OIDC prefix passes: the hole the rules close', async () => {
    const verdict = await judge(
      await makeSnapshot([issuer]),
      { alice: await token('alice@example.com'), bob: await token('bob@example.com') },
      'oidc:alice@example.com',
    );
    expect(verdict.allowed).toBe(true);
  });

  it.each([
    ['an OIDC prefix', 'oidc:alice@example.com'],
    ['an AWS assumed-role ARN', 'arn:aws:sts::123456789012:assumed-role/Deployer/alice@example.com'],
    ['a name already an email (GKE)', 'alice@example.com'],
  ])('refuses a self-approval hidden behind %s, naming the mapped identity and the name it came from', async (_what, user) => {
    const verdict = await judge(await mapped(), { alice: await token('alice@example.com'), bob: await token('bob@example.com') }, user);
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals.find((a) => a.key === 'approval.twokey.dev/alice')).toMatchObject({ code: 'self' });
    if (user !== 'alice@example.com') {
      expect(verdict.message).toContain(`neither "alice@example.com" (from "${user}") (making this request)`);
      expect(verdict.message).toContain(
        `approver "alice@example.com" is the user making this request, "alice@example.com" (from "${user}"), who cannot approve their own change`,
      );
    }
  });

  it('refuses an approval naming the user as Kubernetes wrote it, besides the mapped identity', async () => {
    const verdict = await judge(
      await mapped(),
      { raw: await token('oidc:alice@example.com'), bob: await token('bob@example.com') },
      'oidc:alice@example.com',
    );
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals.find((a) => a.key === 'approval.twokey.dev/raw')).toMatchObject({ code: 'self' });
  });

  it("refuses a service account's approval under the pipeline name the policy maps it to", async () => {
    const verdict = await judge(
      await mapped(),
      { bot: await token('pipeline:deploy-bot'), bob: await token('bob@example.com') },
      'system:serviceaccount:ci:agent',
    );
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toContain('"pipeline:deploy-bot" (from "system:serviceaccount:ci:agent")');
    const others = await judge(
      await mapped(),
      { carol: await token('carol@example.com'), bob: await token('bob@example.com') },
      'system:serviceaccount:ci:agent',
    );
    expect(others.allowed).toBe(true);
  });

  it("matches EKS's {{SessionName}}, which writes @ as -, against the approver's own name", async () => {
    const snapshot = await makeSnapshot([issuer], makePolicy({ identities: { rules: [{ awsAssumedRole: { sessionName: 'eks' } }] } }));
    const verdict = await judge(
      snapshot,
      { alice: await token('alice@example.com'), bob: await token('bob@example.com') },
      'arn:aws:sts::123456789012:assumed-role/Deployer/alice-example.com',
    );
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals[0]).toMatchObject({ code: 'self' });
  });

  it('refuses a user no rule maps (identities.unmapped defaults to refuse), naming the user, even with two approvals', async () => {
    const approvals = { bob: await token('bob@example.com'), carol: await token('carol@example.com') };
    const refused = await judge(await mapped(), approvals, 'erin');
    expect(refused.allowed).toBe(false);
    expect(refused.message).toContain('the requesting user "erin" matches no identities rule, and identities.unmapped is refuse');
    const foreign = await judge(await mapped(), approvals, 'arn:aws:sts::999999999999:assumed-role/Deployer/alice@example.com');
    expect(foreign.allowed).toBe(false);
    const asIs = await makeSnapshot([issuer], makePolicy({ identities: { ...identities, unmapped: 'asIs' } }));
    expect((await judge(asIs, approvals, 'erin')).allowed).toBe(true);
    // Only gated requests compare the user with approvers.
    expect((await judge(await mapped(), {}, 'erin', deployment({ namespace: 'sandbox' }))).allowed).toBe(true);
  });

  it('refuses a user that rules map to different identities, or to no valid identity', async () => {
    const snapshot = await makeSnapshot(
      [issuer],
      makePolicy({ identities: { rules: [{ stripPrefix: 'oidc:' }, { exact: { 'oidc:alice@example.com': 'mallory@example.com' } }] } }),
    );
    const approvals = { bob: await token('bob@example.com'), carol: await token('carol@example.com') };
    const ambiguous = await judge(snapshot, approvals, 'oidc:alice@example.com');
    expect(ambiguous.allowed).toBe(false);
    expect(ambiguous.message).toContain('"oidc:alice@example.com" is mapped to different identities');
    const empty = await judge(snapshot, approvals, 'oidc: ');
    expect(empty.allowed).toBe(false);
  });

  it('refuses bad rules at policy load', () => {
    expect(() => makePolicy({ identities: { rules: [{ suffix: 'example.com' }] } })).toThrow(/suffix: must start with "@" or "."/);
    expect(() => makePolicy({ identities: { rules: [{ exact: { 'ci agent': 'bot' } }] } })).toThrow(/not a valid user name/);
    expect(() => makePolicy({ identities: { rules: [{ exact: { agent: 'a\u200bb' } }] } })).toThrow(/not a valid identity/);
    expect(() => makePolicy({ identities: { rules: [{ awsAssumedRole: { accounts: ['12'] } }] } })).toThrow(/identities/);
    expect(() => makePolicy({ identities: { rules: [] } })).toThrow(/identities/);
    expect(() => makePolicy({ identities: { rules: [{ stripPrefix: 'oidc:', suffix: '@x.com' }] } })).toThrow(/identities/);
  });

  it('maps as the README says', () => {
    const policy = makePolicy({ identities });
    expect(mapUser(policy.identities, 'oidc:Alice@Example.com')).toMatchObject({
      ok: true,
      identity: 'alice@example.com',
      from: 'oidc:Alice@Example.com',
    });
    expect(mapUser(policy.identities, 'ci@proj.iam.gserviceaccount.com')).toEqual({
      ok: true,
      identity: 'ci@proj.iam.gserviceaccount.com',
    });
    expect(mapUser(policy.identities, 'arn:aws-us-gov:sts::123456789012:assumed-role/R/bob@example.com')).toMatchObject({
      identity: 'bob@example.com',
    });
    expect(mapUser(undefined, 'system:admin')).toEqual({ ok: true, identity: 'system:admin' });
  });
});

describe('countersigned approvals', () => {
  let snapshot: ConfigSnapshot;
  const countersignPolicy = (extra: Record<string, unknown> = {}) =>
    makePolicy({ approvals: { countersign: true }, approvers: [registryEntry(bob), registryEntry(carol)], ...extra });

  beforeAll(async () => {
    snapshot = await makeRegistrySnapshot([issuer], countersignPolicy());
  });

  const both = async () => ({
    bob: await countersigned(bob, await token(bob.identity)),
    carol: await countersigned(carol, await token(carol.identity)),
  });

  it('admits two approvals each countersigned by its approver', async () => {
    const verdict = await judge(snapshot, await both(), 'deployer@example.com');
    expect(verdict.allowed).toBe(true);
    expect(verdict.approvers).toEqual(['bob@example.com', 'carol@example.com']);
  });

  it("does not count the change system's key alone: compact tokens, and General ones without a countersignature", async () => {
    const { bob: good } = await both();
    const compact = await judge(snapshot, { bob: good, carol: await token(carol.identity) }, 'deployer@example.com');
    expect(compact.allowed).toBe(false);
    expect(compact.approvals[1]).toMatchObject({ code: 'countersignature', detail: expect.stringMatching(/is a compact JWS/) });
    const [h, p, s] = (await token(carol.identity)).split('.');
    const single = JSON.stringify({ payload: p, signatures: [{ protected: h, signature: s }] });
    const general = await judge(snapshot, { bob: good, carol: single }, 'deployer@example.com');
    expect(general.allowed).toBe(false);
    expect(general.approvals[1]).toMatchObject({ code: 'countersignature', detail: expect.stringMatching(/carries no countersignature/) });
  });

  it("does not count the approver's key alone: a countersignature over claims no change system signed", async () => {
    const { bob: good } = await both();
    const payload = claims(issuer, bindingFor('deploy', api));
    const forged = JSON.parse(await countersigned(carol, rawToken(issuer, { payload: { ...payload, sub: carol.identity } })));
    forged.signatures[0].signature = b64url(Buffer.alloc(64, 1));
    const verdict = await judge(snapshot, { bob: good, carol: JSON.stringify(forged) }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals[1]).toMatchObject({ code: 'signature' });
    // Nor as the only signature, whatever it claims to be.
    const alone = JSON.stringify({ payload: forged.payload, signatures: [forged.signatures[1]] });
    expect((await judge(snapshot, { bob: good, carol: alone }, 'deployer@example.com')).approvals[1]).toMatchObject({ code: 'type' });
  });

  it("does not count a countersignature by another approver's registered key", async () => {
    const { bob: good } = await both();
    const stolen = await countersigned(bob, await token(carol.identity));
    const verdict = await judge(snapshot, { bob: good, carol: stolen }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals[1]).toMatchObject({
      code: 'countersignature',
      detail: `countersigned with key "bob@example.com-1" of "bob@example.com", not a key of the approver "carol@example.com"`,
    });
  });

  it('does not count a countersignature moved to another token, or made over other claims', async () => {
    const { bob: good } = await both();
    const carolsFirst = JSON.parse(await countersigned(carol, await token(carol.identity, { change: 'CHG-OTHER' })));
    const second = JSON.parse(await countersigned(carol, await token(carol.identity)));
    second.signatures[1] = carolsFirst.signatures[1];
    const verdict = await judge(snapshot, { bob: good, carol: JSON.stringify(second) }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals[1]).toMatchObject({
      code: 'countersignature',
      detail: expect.stringMatching(/does not verify with key "carol@example.com-1"/),
    });
  });

  it('does not count an unknown approver key, nor an approver outside the registry, saying which', async () => {
    const { bob: good } = await both();
    const impostor = await makeApprover('carol@example.com', 'carol-laptop');
    const unknown = await judge(
      snapshot,
      { bob: good, carol: await countersigned(impostor, await token(carol.identity)) },
      'deployer@example.com',
    );
    expect(unknown.approvals[1]).toMatchObject({
      code: 'countersignature',
      detail: expect.stringMatching(/key "carol-laptop", which is not registered for "carol@example.com" \(unknown approver key\)/),
    });
    const sameKid = await makeApprover('carol@example.com');
    const forged = await judge(
      snapshot,
      { bob: good, carol: await countersigned(sameKid, await token(carol.identity)) },
      'deployer@example.com',
    );
    expect(forged.approvals[1]).toMatchObject({ code: 'countersignature', detail: expect.stringMatching(/does not verify/) });
    const outsider = await judge(
      snapshot,
      { bob: good, dave: await countersigned(dave, await token(dave.identity)) },
      'deployer@example.com',
    );
    expect(outsider.allowed).toBe(false);
    expect(outsider.approvals[1]).toMatchObject({
      detail: expect.stringMatching(/"dave@example.com" has no key in the approvers registry/),
    });
  });

  it('remembers a verified token by its whole value: a changed countersignature is judged again', async () => {
    const approvals = await both();
    expect((await judge(snapshot, approvals, 'deployer@example.com')).allowed).toBe(true);
    const tampered = JSON.parse(approvals.carol);
    tampered.signatures[1].signature = b64url(Buffer.alloc(64, 9));
    const verdict = await judge(snapshot, { bob: approvals.bob, carol: JSON.stringify(tampered) }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals[1]).toMatchObject({ code: 'countersignature' });
  });

  it('never counts two approvals countersigned with one key as two people, whatever their sub', () => {
    const approval = (approver: string) => ({
      issuer: 'i',
      jti: approver,
      approver: approver as Identity,
      change: 'C',
      requester: undefined,
      issuedAt: 0,
      expiresAt: 1,
      approverKey: 'same-thumbprint',
    });
    const result = tallyQuorum(
      [
        { key: 'a', approval: approval('bob@example.com') },
        { key: 'b', approval: approval('carol@example.com') },
      ],
      () => false,
      { required: 2, groups: [] },
    );
    expect(result.admitted).toBeUndefined();
    expect(result.standing.get('b')).toMatchObject({ status: 'duplicate', of: 'a', sameKey: true });
  });

  it('without countersign mode, accepts a General token on its change system signature (its countersignature unchecked)', async () => {
    const plain = await makeSnapshot([issuer]);
    const impostor = await makeApprover('carol@example.com', 'nobody');
    const verdict = await judge(
      plain,
      { bob: await token(bob.identity), carol: await countersigned(impostor, await token(carol.identity)) },
      'deployer@example.com',
    );
    expect(verdict.allowed).toBe(true);
  });

  it('counts an approver key of either of two registered keys while both are listed (rotation), and not the removed one', async () => {
    const next = await makeApprover('carol@example.com', 'carol-2');
    const rotating = await makeRegistrySnapshot(
      [issuer],
      makePolicy({ approvals: { countersign: true }, approvers: [registryEntry(bob), registryEntry(carol, [], next.jwks.keys)] }),
    );
    const old = await countersigned(carol, await token(carol.identity));
    const bobs = await countersigned(bob, await token(bob.identity));
    expect((await judge(rotating, { bob: bobs, carol: old }, 'deployer@example.com')).allowed).toBe(true);
    expect(
      (await judge(rotating, { bob: bobs, carol: await countersigned(next, await token(carol.identity)) }, 'deployer@example.com')).allowed,
    ).toBe(true);
    const rotated = await makeRegistrySnapshot(
      [issuer],
      makePolicy({ approvals: { countersign: true }, approvers: [registryEntry(bob), { ...registryEntry(next) }] }),
    );
    const verdict = await judge(rotated, { bob: bobs, carol: old }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals[1]).toMatchObject({ code: 'countersignature' });
  });

  it('refuses at load: one key for two approvers, an approver key that is an issuer key, countersigning without a registry', async () => {
    const shared = makePolicy({ approvers: [registryEntry(bob), { identity: 'mallory@example.com', jwks: bob.jwks, groups: [] }] });
    await expect(loadApproverKeys(shared)).rejects.toThrow(
      /one key is registered for "bob@example.com" \(kid "bob@example.com-1"\) and for "mallory@example.com"/,
    );
    const issuerKey = makePolicy({ approvers: [{ identity: 'mallory@example.com', jwks: issuer.jwks }] });
    const sets = [await importJwks(issuer.issuer, issuer.jwks, 'test')];
    expect(() => assertNoSharedKeys(undefined, sets)).not.toThrow();
    const keys = await loadApproverKeys(issuerKey);
    expect(() => assertNoSharedKeys(keys, sets)).toThrow(/is also registered for approver "mallory@example.com"/);
    expect(() => makePolicy({ approvals: { countersign: true } })).toThrow(/approvals.countersign: needs an approvers registry/);
    expect(() => makePolicy({ approvers: [{ identity: 'bob', jwks: bob.jwks, jwksFile: 'x.json' }] })).toThrow(
      /exactly one of jwksFile and jwks/,
    );
    const privateKey = makePolicy({ approvers: [{ identity: 'bob', jwks: { keys: [bob.privateJwk] } }] });
    await expect(loadApproverKeys(privateKey)).rejects.toThrow(/private or secret key material/);
  });
});

describe('approver groups', () => {
  const groupsPolicy = (rules: unknown[], extra: Record<string, unknown> = {}) =>
    makePolicy({
      approvals: { rules },
      approvers: [registryEntry(bob, ['sre']), registryEntry(carol, ['dev']), registryEntry(dave, ['dev'])],
      ...extra,
    });

  it('refuses two approvals without one from the group the rule asks for, saying which group is missing', async () => {
    const snapshot = await makeRegistrySnapshot([issuer], groupsPolicy([{ required: 2, groups: [{ group: 'sre', atLeast: 1 }] }]));
    const verdict = await judge(snapshot, { carol: await token(carol.identity), dave: await token(dave.identity) }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toContain(
      'refused: 2 of 2 required approvals (change "CHG0031337": "carol@example.com", "dave@example.com"); still missing: 1 more approval from group "sre" (0 of 1).',
    );
    expect(verdict.message).toContain('at least 1 from group "sre"');
    expect(verdict.aspects[0]?.missing).toEqual([{ group: 'sre', atLeast: 1, have: 0 }]);
    const admitted = await judge(snapshot, { bob: await token(bob.identity), carol: await token(carol.identity) }, 'deployer@example.com');
    expect(admitted.allowed).toBe(true);
    const none = await judge(snapshot, {}, 'deployer@example.com');
    expect(none.message).toContain('0 of 2 required approvals; still missing: 1 more approval from group "sre" (0 of 1)');
  });

  it('in warn mode, reports a quorum short of a group as missing-group, not as too few approvals', async () => {
    const rules = [{ required: 2, groups: [{ group: 'sre', atLeast: 1 }] }];
    const snapshot = await makeRegistrySnapshot([issuer], groupsPolicy(rules, { mode: 'warn' }));
    const twoDevs = await judge(snapshot, { carol: await token(carol.identity), dave: await token(dave.identity) }, 'deployer@example.com');
    expect(twoDevs).toMatchObject({ allowed: true, wouldRefuse: 'policy' });
    expect(wouldRefuseReason(twoDevs)).toBe('missing-group');
    const oneDev = await judge(snapshot, { carol: await token(carol.identity) }, 'deployer@example.com');
    expect(wouldRefuseReason(oneDev)).toBe('too-few-approvals');
    expect(wouldRefuseReason(await judge(snapshot, {}, 'deployer@example.com'))).toBe('no-approvals');
  });

  it('takes groups from the registry, never from a claim in the token', async () => {
    const snapshot = await makeRegistrySnapshot([issuer], groupsPolicy([{ groups: [{ group: 'sre', atLeast: 1 }] }]));
    const claimed = rawToken(issuer, {
      payload: claims(issuer, bindingFor('deploy', api), {
        sub: dave.identity,
        groups: ['sre'],
        twokey: { change: 'CHG0031337', ...bindingFor('deploy', api), groups: ['sre'] },
      }),
    });
    const verdict = await judge(snapshot, { carol: await token(carol.identity), dave: claimed }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(verdict.aspects[0]?.missing).toEqual([{ group: 'sre', atLeast: 1, have: 0 }]);
  });

  it('applies the first rule whose namespaces select the change, a Namespace by its own name', async () => {
    const snapshot = await makeRegistrySnapshot(
      [issuer],
      groupsPolicy(
        [{ namespaces: ['team-*'], required: 3 }, { namespaces: ['payments'], groups: [{ group: 'sre', atLeast: 1 }] }, { required: 2 }],
        {
          critical: { namespaces: ['payments', 'team-a', 'other'] },
        },
      ),
    );
    const teamApi = deployment({ namespace: 'team-a' });
    const twoForTeam = { bob: await token(bob.identity, { object: teamApi }), carol: await token(carol.identity, { object: teamApi }) };
    expect((await judge(snapshot, twoForTeam, 'deployer@example.com', teamApi)).message).toContain('2 of 3 required approvals');
    const otherApi = deployment({ namespace: 'other' });
    expect(
      (
        await judge(
          snapshot,
          { carol: await token(carol.identity, { object: otherApi }), dave: await token(dave.identity, { object: otherApi }) },
          'deployer@example.com',
          otherApi,
        )
      ).allowed,
    ).toBe(true);
    const ns = namespaceObject('team-b', { labels: { 'twokey.dev/critical': 'true' } });
    const del = await decide(request({ operation: 'DELETE', oldObject: ns, user: 'deployer@example.com' }), offlineContext(snapshot));
    expect(del.message).toContain('0 of 3 required approvals');
  });

  it('refuses at load a rule that can never be met, and groups without a registry', () => {
    expect(() => groupsPolicy([{ required: 2, groups: [{ group: 'sre', atLeast: 3 }] }])).toThrow(
      /atLeast 3 is more than the 2 approvals required/,
    );
    expect(() => groupsPolicy([{ required: 3, groups: [{ group: 'sre', atLeast: 2 }] }])).toThrow(
      /group "sre" has 1 member in approvers, fewer than atLeast 2/,
    );
    expect(() => groupsPolicy([{ groups: [{ group: 'dba', atLeast: 1 }] }])).toThrow(/group "dba" has no member in approvers/);
    expect(() => makePolicy({ approvals: { rules: [{ groups: [{ group: 'sre', atLeast: 1 }] }] } })).toThrow(/needs an approvers registry/);
    expect(() => groupsPolicy([{ required: 2 }, { namespaces: ['payments'], required: 3 }])).toThrow(/rules after it would never apply/);
    expect(() => groupsPolicy([{ namespaces: ['Pay ments'] }])).toThrow(/neither a namespace name nor a prefix/);
  });
});
