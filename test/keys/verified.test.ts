import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateApproval } from '../../src/decision/approval.ts';
import { VerifiedTokens } from '../../src/keys/verified.ts';
import { claims, rawToken } from '../support/tokens.ts';
import { approve, bindingFor, deployment, type Issuer, makeIssuer, makePolicy, makeSnapshot, NOW } from '../support/world.ts';

const entry = { header: {}, payload: {}, key: {} as never, expiresAt: NOW + 100 };

describe('the verified-token cache', () => {
  it('drops an entry once its token has expired', () => {
    const cache = new VerifiedTokens();
    cache.set('a.b.c', entry);
    expect(cache.get('a.b.c', NOW)).toBe(entry);
    expect(cache.get('a.b.c', NOW + 101)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('is bounded by entries and by bytes, forgetting the least recently used first', () => {
    const byCount = new VerifiedTokens({ maxEntries: 2 });
    byCount.set('t1', entry);
    byCount.set('t2', entry);
    byCount.get('t1', NOW);
    byCount.set('t3', entry);
    expect([byCount.get('t1', NOW), byCount.get('t2', NOW), byCount.get('t3', NOW)]).toEqual([entry, undefined, entry]);
    const byBytes = new VerifiedTokens({ maxBytes: 10 });
    byBytes.set('123456', entry);
    byBytes.set('abcdef', entry);
    expect(byBytes.size).toBe(1);
    expect(byBytes.get('abcdef', NOW)).toBe(entry);
  });
});

describe('approvals through the cache', () => {
  let issuer: Issuer;
  beforeAll(async () => {
    issuer = await makeIssuer();
  });
  const api = deployment();
  const expected = bindingFor('deploy', api);

  it('remembers a verified token and still checks every claim on each use', async () => {
    const snapshot = await makeSnapshot([issuer]);
    const token = await approve(issuer, 'deploy', api, { approver: 'bob@example.com', ttlSeconds: 600 });
    const ctx = { ...snapshot, now: NOW };
    expect((await evaluateApproval(token, expected, ctx)).ok).toBe(true);
    expect(snapshot.keys.verified.size).toBe(1);
    expect((await evaluateApproval(token, expected, ctx)).ok).toBe(true);
    // The same remembered token, judged under another policy, for another object, or later.
    const otherCluster = { ...ctx, policy: makePolicy({ cluster: 'staging' }) };
    expect(await evaluateApproval(token, expected, otherCluster)).toMatchObject({ ok: false, code: 'audience' });
    expect(await evaluateApproval(token, bindingFor('deploy', deployment({ name: 'other' })), ctx)).toMatchObject({
      ok: false,
      code: 'binding',
    });
    expect(await evaluateApproval(token, expected, { ...ctx, now: NOW + 3600 })).toMatchObject({ ok: false, code: 'expired' });
    expect(snapshot.keys.verified.size).toBe(0);
  });

  it('never remembers a token whose signature failed', async () => {
    const snapshot = await makeSnapshot([issuer]);
    const other = await makeIssuer(issuer.issuer, 'EdDSA', issuer.privateJwk.kid);
    const forged = rawToken(issuer, { payload: claims(issuer, expected), signWith: { kind: 'issuer', issuer: other } });
    for (let i = 0; i < 2; i += 1) {
      expect(await evaluateApproval(forged, expected, { ...snapshot, now: NOW })).toMatchObject({ ok: false, code: 'signature' });
    }
    expect(snapshot.keys.verified.size).toBe(0);
  });

  it('starts empty with new keys, so a rotated-out key verifies nothing it verified before', async () => {
    const before = await makeSnapshot([issuer]);
    const token = await approve(issuer, 'deploy', api, { approver: 'bob@example.com' });
    expect((await evaluateApproval(token, expected, { ...before, now: NOW })).ok).toBe(true);
    const rotated = await makeSnapshot([await makeIssuer(issuer.issuer, 'EdDSA', issuer.privateJwk.kid)]);
    expect(await evaluateApproval(token, expected, { ...rotated, now: NOW })).toMatchObject({ ok: false, code: 'signature' });
  });
});
