/**
 * Break-glass, hostile: one approver's token from the break-glass issuer lets through exactly the
 * changes it names, loudly; anything else about it (another object or digest, too long a life, no
 * incident, an ordinary key, the requester approving) leaves the request refused, saying why.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { BREAK_GLASS_CLAIM } from '../../src/change/claims.ts';
import { type DecisionContext, decide } from '../../src/decision/decide.ts';
import type { Decision } from '../../src/decision/wording.ts';
import type { JsonObject } from '../../src/json.ts';
import type { KeyRing } from '../../src/keys/jwks.ts';
import { claims, rawToken } from '../support/tokens.ts';
import {
  approve,
  BREAK_GLASS_ISSUER,
  BREAK_GLASS_POLICY,
  bindingFor,
  breakGlass,
  deployment,
  type Issuer,
  makeBreakGlassIssuers,
  makeIssuer,
  makePolicy,
  NOW,
  namespaceObject,
  offlineContext,
  request,
  withAnnotations,
  withLabels,
} from '../support/world.ts';

let issuer: Issuer;
let glass: Issuer;
let keys: KeyRing;
const policy = makePolicy({ breakGlass: BREAK_GLASS_POLICY });
const api = deployment();
const BG = 'twokey.dev/break-glass';

beforeAll(async () => {
  ({ issuer, glass, keys } = await makeBreakGlassIssuers());
});

const ctx = (overrides: Partial<DecisionContext> = {}) => offlineContext({ policy, keys }, overrides);

async function create(
  annotations: Record<string, string>,
  user = 'deployer@example.com',
  object: JsonObject = api,
  more = {},
): Promise<Decision> {
  return decide(request({ operation: 'CREATE', object: withAnnotations(object, annotations), user }), ctx(more));
}

const deployOf = (object: JsonObject = api) => bindingFor('deploy', object);

describe('a break-glass token', () => {
  it('admits the deploy it names with one approver, loudly', async () => {
    const verdict = await create({ [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com', incident: 'INC-123' }) });
    expect(verdict.allowed).toBe(true);
    expect(verdict.breakGlass).toMatchObject({
      status: 'counted',
      incident: 'INC-123',
      approver: 'dave@example.com',
      issuedAt: NOW - 60,
      reviewBy: NOW - 60 + 24 * 3600,
    });
    expect(verdict.aspects).toEqual([expect.objectContaining({ action: 'deploy', allowed: true, breakGlass: true })]);
    expect(verdict.summary).toMatch(
      /^admitted by break-glass: deploy of deployments.apps payments\/api for incident "INC-123" by "dave@example.com"/,
    );
    expect(verdict.warnings[0]).toBe('twokey: BREAK-GLASS: admitted without two approvals, for incident "INC-123" by "dave@example.com"');
    expect(verdict.warnings[1]).toMatch(
      /^twokey: two approvals of this state are due by 2027-01-16T\d\d:\d\d:\d\dZ; twokey scan reports it until then$/,
    );
    expect(verdict.auditAnnotations).toMatchObject({
      decision: 'admitted',
      action: 'deploy',
      digest: deployOf().digest,
      'break-glass': 'INC-123',
      'break-glass-approver': 'dave@example.com',
    });
    for (const line of verdict.warnings) expect(line.length).toBeLessThanOrEqual(120);
  });

  it('is not consulted when two approvals admit the change', async () => {
    const verdict = await create({
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
      [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com' }),
    });
    expect(verdict.allowed).toBe(true);
    expect(verdict.breakGlass).toBeUndefined();
    expect(verdict.summary).toMatch(/^admitted: deploy .* approved for CHG0031337/);
  });

  it('may name several objects, and lets each through', async () => {
    const web = deployment({ name: 'web', uid: 'uid-web' });
    const token = await breakGlass(glass, [deployOf(web), deployOf()], { approver: 'dave@example.com' });
    expect((await create({ [BG]: token })).allowed).toBe(true);
    expect((await create({ [BG]: token }, 'deployer@example.com', web)).allowed).toBe(true);
  });

  it('covers each aspect of a request gated as several actions only when it names each', async () => {
    // In a namespace that is not critical, so that removing the label unprotects.
    const old = withLabels(deployment({ namespace: 'team-a' }), { 'twokey.dev/critical': 'true' });
    const next = deployment({ namespace: 'team-a', image: 'registry.example.com/api:2.0.0' });
    const update = async (token: string) =>
      decide(
        request({ operation: 'UPDATE', object: withAnnotations(next, { [BG]: token }), oldObject: old, user: 'deployer@example.com' }),
        ctx(),
      );
    const deployOnly = await update(await breakGlass(glass, [deployOf(next)], { approver: 'dave@example.com' }));
    expect(deployOnly.allowed).toBe(false);
    expect(deployOnly.breakGlass).toMatchObject({ status: 'not-counted', code: 'binding' });
    expect(deployOnly.message).toMatch(
      /The break-glass token \(twokey.dev\/break-glass\) did not count: names no change of the unprotect bound to digest sha256:/,
    );
    const both = await update(await breakGlass(glass, [deployOf(next), bindingFor('unprotect', next)], { approver: 'dave@example.com' }));
    expect(both.allowed).toBe(true);
    expect(both.action).toBe('deploy+unprotect');
  });
});

describe('a break-glass token on a delete', () => {
  it('is read from the object being deleted, and binds its uid', async () => {
    const old = namespaceObject('payments');
    const del = async (token: string) =>
      decide(request({ operation: 'DELETE', oldObject: withAnnotations(old, { [BG]: token }), user: 'deployer@example.com' }), ctx());
    const admitted = await del(await breakGlass(glass, [bindingFor('delete', old)], { approver: 'dave@example.com', incident: 'INC-7' }));
    expect(admitted).toMatchObject({ allowed: true, action: 'delete', breakGlass: { status: 'counted', incident: 'INC-7' } });
    // The same name recreated has another uid: the token does not carry over.
    const recreated = namespaceObject('payments', { uid: 'uid-payments-2' });
    const refused = await del(await breakGlass(glass, [bindingFor('delete', recreated)], { approver: 'dave@example.com' }));
    expect(refused).toMatchObject({ allowed: false, breakGlass: { status: 'not-counted', code: 'binding' } });
  });
});

describe('a break-glass token that must not count', () => {
  const refusedFor = async (annotations: Record<string, string>, code: string, detail: RegExp, user?: string, more = {}) => {
    const verdict = await create(annotations, user, api, more);
    expect(verdict.allowed).toBe(false);
    expect(verdict.breakGlass).toMatchObject({ status: 'not-counted', code });
    expect(verdict.message).toMatch(detail);
    return verdict;
  };

  it('for another object', async () => {
    const web = deployment({ name: 'web' });
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf(web)], { approver: 'dave@example.com' }) },
      'binding',
      /did not count: names no change of the deploy/,
    );
  });

  it('for another digest of the same object', async () => {
    const other = deployOf(deployment({ image: 'registry.example.com/api:6.6.6' }));
    await refusedFor(
      { [BG]: await breakGlass(glass, [other], { approver: 'dave@example.com' }) },
      'binding',
      /names no change of the deploy bound to digest/,
    );
  });

  it('for another action on the same object', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [bindingFor('delete', api)], { approver: 'dave@example.com' }) },
      'binding',
      /names no change/,
    );
  });

  it('expired', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com', now: NOW - 3000, ttlSeconds: 1800 }) },
      'expired',
      /did not count: expired at/,
    );
  });

  it('living longer than breakGlass.maxTtl (1h by default), though within approvals.maxTtl', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com', ttlSeconds: 2 * 3600 }) },
      'lifetime',
      /lives 7200s, more than the allowed 3600s/,
    );
  });

  it('without an incident, or with an empty one', async () => {
    const payload = (claim: Record<string, unknown>) =>
      claims(glass, deployOf(), { sub: 'dave@example.com', exp: NOW + 1800, twokey: undefined, [BREAK_GLASS_CLAIM]: claim });
    const header = { alg: 'EdDSA', typ: 'twokey-break-glass+jwt', kid: 'glass-1' };
    const signed = (claim: Record<string, unknown>) => rawToken(glass, { header, payload: payload(claim) });
    await refusedFor({ [BG]: signed({ version: 1, changes: [deployOf()] }) }, 'claims', /twokeyBreakGlass.incident is missing/);
    await refusedFor({ [BG]: signed({ version: 1, incident: '  ', changes: [deployOf()] }) }, 'claims', /incident is empty/);
    await refusedFor(
      { [BG]: signed({ version: 2, incident: 'INC-1', changes: [deployOf()] }) },
      'claims',
      /version is "2", this twokey reads 1/,
    );
    await refusedFor({ [BG]: signed({ version: 1, incident: 'INC-1', changes: [] }) }, 'claims', /changes must name at least one change/);
    // The same hand-made token with a complete claim counts: only the rule under test refused the others.
    expect((await create({ [BG]: signed({ version: 1, incident: 'INC-1', changes: [deployOf()] }) })).allowed).toBe(true);
  });

  it('signed by an ordinary issuer key, claiming either issuer', async () => {
    await refusedFor(
      { [BG]: await breakGlass(issuer, [deployOf()], { approver: 'dave@example.com', issuer: BREAK_GLASS_ISSUER }) },
      'kid',
      /kid ".*" is not in the JWKS of "https:\/\/break-glass.example.com"/,
    );
    await refusedFor(
      { [BG]: await breakGlass(issuer, [deployOf()], { approver: 'dave@example.com' }) },
      'issuer',
      /is not the break-glass issuer/,
    );
  });

  it('signed by an ordinary key under the break-glass key id', async () => {
    const impostor = await makeIssuer(BREAK_GLASS_ISSUER, 'EdDSA', 'glass-1');
    await refusedFor(
      { [BG]: await breakGlass(impostor, [deployOf()], { approver: 'dave@example.com' }) },
      'signature',
      /signature does not verify/,
    );
  });

  it('an ordinary approval presented as break-glass', async () => {
    await refusedFor(
      { [BG]: await approve(issuer, 'deploy', api, { approver: 'dave@example.com' }) },
      'type',
      /typ is "twokey-approval\+jwt", expected twokey-break-glass\+jwt/,
    );
  });

  it('a break-glass token presented as an approval counts as no approval', async () => {
    const token = await breakGlass(glass, [deployOf()], { approver: 'dave@example.com' });
    const verdict = await create({
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/dave': token,
    });
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals.find((a) => a.key === 'approval.twokey.dev/dave')).toMatchObject({ code: 'type' });
  });

  it('whose approver is the user making the request', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf()], { approver: 'Dave@Example.com' }) },
      'self',
      /did not count: its approver "dave@example.com" is the user making this request/,
      'dave@example.com',
    );
  });

  it('whose approver is the requester it names', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com', requester: 'dave@example.com' }) },
      'requester',
      /is the requester it names/,
    );
  });

  it('for another cluster', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com', audience: 'staging' }) },
      'audience',
      /aud is "staging"/,
    );
  });

  it('when the policy has no break-glass issuer', async () => {
    await refusedFor(
      { [BG]: await breakGlass(glass, [deployOf()], { approver: 'dave@example.com' }) },
      'issuer',
      /no break-glass issuer is configured/,
      undefined,
      { policy: makePolicy() },
    );
  });
});
