/**
 * Break-glass against an agent that holds one break-glass token (or the break-glass key's tokens it
 * has seen) and writes any annotation: the token lets through exactly the changes it names, never
 * counts as an approval, and its admission is never mistaken for a warn-mode one.
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
  BREAK_GLASS_POLICY,
  bindingFor,
  breakGlass,
  deployment,
  type Issuer,
  makeBreakGlassIssuers,
  makePolicy,
  NOW,
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
const create = (
  object: JsonObject,
  annotations: Record<string, string>,
  more: Record<string, unknown> = {},
  user = 'deployer@example.com',
) => decide(request({ operation: 'CREATE', object: withAnnotations(object, annotations), user }), ctx(more));
const glassHeader = { alg: 'EdDSA', typ: 'twokey-break-glass+jwt', kid: 'glass-1' };
const glassClaims = (overrides: Record<string, unknown> = {}, claim: Record<string, unknown> = {}) =>
  claims(glass, bindingFor('deploy', api), {
    sub: 'dave@example.com',
    exp: NOW + 1800,
    twokey: undefined,
    [BREAK_GLASS_CLAIM]: { version: 1, incident: 'INC-1', changes: [bindingFor('deploy', api)], ...claim },
    ...overrides,
  });

describe('a break-glass token names one change exactly', () => {
  it('counts as written (the control for the cases below)', async () => {
    const verdict = await create(api, { [BG]: rawToken(glass, { header: glassHeader, payload: glassClaims() }) });
    expect(verdict).toMatchObject({ allowed: true, breakGlass: { status: 'counted' } });
  });

  it('is not counted in the JSON form approvals may take, whatever signatures it carries', async () => {
    const [header, payload, signature] = rawToken(glass, { header: glassHeader, payload: glassClaims() }).split('.');
    const general = JSON.stringify({ payload, signatures: [{ protected: header, signature }] });
    const verdict = await create(api, { [BG]: general });
    expect(verdict.allowed).toBe(false);
    expect(verdict.breakGlass).toMatchObject({ status: 'not-counted', code: 'malformed' });
    expect(verdict.message).toMatch(/a break-glass token is a compact JWS/);
  });

  it.each([
    ['another namespace', { namespace: 'checkout' }],
    ['another resource', { resource: 'statefulsets.apps' }],
    ['another name', { name: 'api-2' }],
    ['the name in another case', { name: 'API' }],
    ['the digest in upper case', { digest: bindingFor('deploy', api).digest.toUpperCase() }],
  ])('is refused when its change differs by %s', async (_name, change) => {
    const token = rawToken(glass, {
      header: glassHeader,
      payload: glassClaims({}, { changes: [{ ...bindingFor('deploy', api), ...change }] }),
    });
    const verdict = await create(api, { [BG]: token });
    expect(verdict).toMatchObject({ allowed: false, breakGlass: { status: 'not-counted', code: 'binding' } });
  });

  it.each([
    ['issued in the future', { iat: NOW + 600, exp: NOW + 1800 }, 'not-yet-valid'],
    ['not valid yet', { nbf: NOW + 600 }, 'not-yet-valid'],
    ['living longer than breakGlass.maxTtl by a second', { iat: NOW - 60, exp: NOW - 60 + 3601 }, 'lifetime'],
    ['expired beyond the clock skew', { iat: NOW - 3000, exp: NOW - 61 }, 'expired'],
    ['for two audiences', { aud: ['prod-eu-1', 'staging'] }, 'audience'],
    ['with an empty jti', { jti: '' }, 'claims'],
  ])('is refused when %s', async (_name, overrides, code) => {
    const verdict = await create(api, { [BG]: rawToken(glass, { header: glassHeader, payload: glassClaims(overrides) }) });
    expect(verdict).toMatchObject({ allowed: false, breakGlass: { status: 'not-counted', code } });
  });

  it('is refused for a change whose entries are not objects, or lack a field', async () => {
    const { digest: _digest, ...partial } = bindingFor('deploy', api);
    for (const changes of [['deploy'], [partial], [null]]) {
      const verdict = await create(api, { [BG]: rawToken(glass, { header: glassHeader, payload: glassClaims({}, { changes }) }) });
      expect(verdict).toMatchObject({ allowed: false, breakGlass: { status: 'not-counted', code: 'claims' } });
    }
  });
});

describe("the break-glass key is no approver's", () => {
  it('an approval signed with the break-glass key, naming the break-glass issuer, does not count', async () => {
    const token = rawToken(glass, {
      header: { alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'glass-1' },
      payload: claims(glass, bindingFor('deploy', api), { sub: 'dave@example.com' }),
    });
    const verdict = await create(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/dave': token,
    });
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals.find((a) => a.key === 'approval.twokey.dev/dave')?.code).toBe('issuer');
  });

  it('an approval signed with the break-glass key, naming the ordinary issuer, does not verify', async () => {
    const token = rawToken(glass, {
      header: { alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: issuer.privateJwk.kid },
      payload: claims(issuer, bindingFor('deploy', api), { sub: 'dave@example.com' }),
    });
    const verdict = await create(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/dave': token,
    });
    expect(verdict.allowed).toBe(false);
    expect(verdict.approvals.find((a) => a.key === 'approval.twokey.dev/dave')?.code).toBe('signature');
  });

  it('one approval and a break-glass token of another approver: the token lets it through, as break-glass, never as a quorum', async () => {
    const verdict = await create(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      [BG]: await breakGlass(glass, [bindingFor('deploy', api)], { approver: 'dave@example.com' }),
    });
    expect(verdict).toMatchObject({ allowed: true, breakGlass: { status: 'counted' } });
    expect(verdict.approvers).toEqual(['bob@example.com']);
    expect(verdict.summary).toMatch(/^admitted by break-glass:/);
  });

  it('a break-glass token copied into approval annotations counts nowhere', async () => {
    const token = await breakGlass(glass, [bindingFor('deploy', api)], { approver: 'dave@example.com' });
    const verdict = await create(api, { 'approval.twokey.dev/a': token, 'approval.twokey.dev/b': ` ${token}\n` });
    expect(verdict.allowed).toBe(false);
    expect(verdict.breakGlass).toBeUndefined();
  });
});

describe('break-glass and warn mode', () => {
  it('a break-glass admission in warn mode is told as break-glass, not as a would-be refusal', async () => {
    const verdict = await create(
      api,
      { [BG]: await breakGlass(glass, [bindingFor('deploy', api)], { approver: 'dave@example.com' }) },
      { policy: makePolicy({ breakGlass: BREAK_GLASS_POLICY, mode: 'warn' }) },
    );
    expect(verdict.allowed).toBe(true);
    expect(verdict.wouldRefuse).toBeUndefined();
    expect(verdict.auditAnnotations).toMatchObject({ 'break-glass': 'INC-123' });
    expect(verdict.warnings[0]).toMatch(/^twokey: BREAK-GLASS:/);
  });

  it('a break-glass token that does not count in warn mode is the reason it would be refused', async () => {
    const verdict: Decision = await create(
      api,
      { [BG]: await breakGlass(glass, [bindingFor('deploy', api)], { approver: 'deployer@example.com' }) },
      { policy: makePolicy({ breakGlass: BREAK_GLASS_POLICY, mode: 'warn' }) },
    );
    expect(verdict).toMatchObject({ allowed: true, wouldRefuse: 'policy', breakGlass: { status: 'not-counted', code: 'self' } });
    expect(verdict.auditAnnotations['would-refuse']).toMatch(/The break-glass token \(twokey.dev\/break-glass\) did not count/);
  });

  it('a label on the object turns neither warn mode nor break-glass on', async () => {
    const labelled = withAnnotations(withLabels(api, { 'twokey.dev/break-glass': 'INC-1' }), { 'twokey.dev/mode': 'warn' });
    const verdict = await create(labelled, { [BG]: 'INC-1' });
    expect(verdict).toMatchObject({ allowed: false, breakGlass: { status: 'not-counted', code: 'malformed' } });
  });
});
