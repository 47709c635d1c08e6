/**
 * The hostile suite: every way an approval can be forged, replayed, stretched or misread, each
 * with the verdict it must get. Each hostile token stands next to one valid approval (bob's), so
 * if the rule under test were removed the hostile token would make the second approval and the
 * request would be admitted.
 */
import { createPublicKey } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../src/decision/decide.ts';
import { type NamespaceView, NO_CLUSTER_VIEW } from '../../src/decision/gate.ts';
import { type Decision, digestFromRefusal } from '../../src/decision/wording.ts';
import type { JsonObject } from '../../src/json.ts';
import { importJwks, KeyRing } from '../../src/keys/jwks.ts';
import { b64url, claims, otherUnusedBits, rawToken, reencodedSignature } from '../support/tokens.ts';
import {
  approve,
  bindingFor,
  CLUSTER,
  deployment,
  type Issuer,
  makeIssuer,
  makePolicy,
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
let other: Issuer;
let snapshot: Awaited<ReturnType<typeof makeSnapshot>>;
const api = deployment();

beforeAll(async () => {
  issuer = await makeIssuer();
  other = await makeIssuer('https://change.example.com', 'EdDSA', 'not-trusted');
  snapshot = await makeSnapshot([issuer]);
});

const ctx = (overrides: Partial<Parameters<typeof decide>[1]> = {}) => offlineContext(snapshot, overrides);

async function createWith(annotations: Record<string, string>, user = 'deployer@example.com', object: JsonObject = api): Promise<Decision> {
  return decide(request({ operation: 'CREATE', object: withAnnotations(object, annotations), user }), ctx());
}

const bob = () => approve(issuer, 'deploy', api, { approver: 'bob@example.com' });
const critical = { 'twokey.dev/critical': 'true' };
/** An owner that does not exist: the garbage collector would delete what it owns. */
const ghost = { apiVersion: 'example.com/v1', kind: 'Database', name: 'ghost', uid: 'uid-of-nothing' };
/** A namespace view in which every namespace's deletion has begun. */
const beingDeleted: NamespaceView = { ...NO_CLUSTER_VIEW, deletion: () => 'deleting' };
const report = (verdict: Decision, key: string) => verdict.approvals.find((a) => a.key === key);
const header = (extra: Record<string, unknown> = {}) => ({
  alg: 'EdDSA',
  typ: 'twokey-approval+jwt',
  kid: issuer.privateJwk.kid,
  ...extra,
});
const carolClaims = (overrides: Record<string, unknown> = {}) => claims(issuer, bindingFor('deploy', api), overrides);
const twokeyClaim = (overrides: Record<string, unknown>) => ({
  twokey: { change: 'CHG0031337', ...bindingFor('deploy', api), ...overrides },
});

describe('the baseline the hostile cases depart from', () => {
  it('admits bob and a hand-made carol approval', async () => {
    const verdict = await createWith({
      'approval.twokey.dev/bob': await bob(),
      'approval.twokey.dev/carol': rawToken(issuer, { header: header(), payload: carolClaims() }),
    });
    expect(verdict.allowed).toBe(true);
    expect(verdict.approvers).toEqual(['bob@example.com', 'carol@example.com']);
  });
});

type HostileCase = [name: string, token: () => string | Promise<string>, code: string];

const cases: HostileCase[] = [
  [
    'alg none, unsigned',
    () => rawToken(issuer, { header: header({ alg: 'none' }), payload: carolClaims(), signWith: { kind: 'none' } }),
    'algorithm',
  ],
  ['an empty signature', () => rawToken(issuer, { header: header(), payload: carolClaims(), signWith: { kind: 'none' } }), 'signature'],
  ['alg none, with the real signature', () => rawToken(issuer, { header: header({ alg: 'none' }), payload: carolClaims() }), 'algorithm'],
  [
    'HS256 signed with the public key',
    () => {
      const pem = createPublicKey({ key: issuer.jwks.keys[0] as never, format: 'jwk' }).export({ type: 'spki', format: 'pem' });
      return rawToken(issuer, { header: header({ alg: 'HS256' }), payload: carolClaims(), signWith: { kind: 'hmac', secret: pem } });
    },
    'algorithm',
  ],
  [
    'an algorithm outside the allowlist (ES384)',
    () => rawToken(issuer, { header: header({ alg: 'ES384' }), payload: carolClaims() }),
    'algorithm',
  ],
  ['RS256 on an Ed25519 key', () => rawToken(issuer, { header: header({ alg: 'RS256' }), payload: carolClaims() }), 'algorithm'],
  [
    'a jwk header with its own key',
    () => rawToken(issuer, { header: header({ jwk: issuer.jwks.keys[0] }), payload: carolClaims() }),
    'header',
  ],
  [
    'a jku header pointing elsewhere',
    () => rawToken(issuer, { header: header({ jku: 'https://evil.example/jwks.json' }), payload: carolClaims() }),
    'header',
  ],
  [
    'an x5u header pointing elsewhere',
    () => rawToken(issuer, { header: header({ x5u: 'https://evil.example/cert.pem' }), payload: carolClaims() }),
    'header',
  ],
  ['an x5c header', () => rawToken(issuer, { header: header({ x5c: ['MIIB'] }), payload: carolClaims() }), 'header'],
  ['no kid', () => rawToken(issuer, { header: { alg: 'EdDSA', typ: 'twokey-approval+jwt' }, payload: carolClaims() }), 'kid'],
  ['an unknown kid', () => rawToken(issuer, { header: header({ kid: 'rotated-away' }), payload: carolClaims() }), 'kid'],
  ['a key the issuer does not publish', () => rawToken(other, { header: header({ kid: 'not-trusted' }), payload: carolClaims() }), 'kid'],
  ['a crit header', () => rawToken(issuer, { header: header({ crit: ['exp'] }), payload: carolClaims() }), 'header'],
  ['b64:false', () => rawToken(issuer, { header: header({ b64: false, crit: ['b64'] }), payload: carolClaims() }), 'header'],
  [
    'a truncated signature',
    () => {
      const token = rawToken(issuer, { header: header(), payload: carolClaims() });
      return token.slice(0, -8);
    },
    'signature',
  ],
  [
    'a signature from another key under the trusted kid',
    () => rawToken(issuer, { header: header(), payload: carolClaims(), signWith: { kind: 'issuer', issuer: other } }),
    'signature',
  ],
  [
    'a payload changed after signing',
    () => {
      const [h, , s] = rawToken(issuer, { header: header(), payload: carolClaims() }).split('.');
      return `${h}.${b64url(JSON.stringify(carolClaims({ sub: 'mallory@example.com' })))}.${s}`;
    },
    'signature',
  ],
  ['4 segments', () => `${rawToken(issuer, { header: header(), payload: carolClaims() })}.AAAA`, 'malformed'],
  ['5 segments (a JWE shape)', () => `${rawToken(issuer, { header: header(), payload: carolClaims() })}.AAAA.BBBB`, 'malformed'],
  ['not base64url', () => rawToken(issuer, { header: header(), payload: carolClaims() }).replace('.', '.+/'), 'malformed'],
  [
    'duplicate member in the header',
    () =>
      rawToken(issuer, {
        header: `{"alg":"EdDSA","typ":"twokey-approval+jwt","kid":"${issuer.privateJwk.kid}","kid":"${issuer.privateJwk.kid}"}`,
        payload: carolClaims(),
      }),
    'not-ijson',
  ],
  [
    'duplicate member in the payload (sub twice)',
    () => {
      const json = JSON.stringify(carolClaims());
      return rawToken(issuer, {
        header: header(),
        payload: json.replace('"sub":"carol@example.com"', '"sub":"mallory@example.com","sub":"carol@example.com"'),
      });
    },
    'not-ijson',
  ],
  [
    'duplicate member inside the twokey claim',
    () => {
      const json = JSON.stringify(carolClaims());
      return rawToken(issuer, {
        header: header(),
        payload: json.replace('"change":"CHG0031337"', '"change":"CHG0000001","change":"CHG0031337"'),
      });
    },
    'not-ijson',
  ],
  [
    'a byte-order mark before the payload',
    () => rawToken(issuer, { header: header(), payload: `\uFEFF${JSON.stringify(carolClaims())}` }),
    'not-ijson',
  ],
  [
    'a byte-order mark before the header',
    () => rawToken(issuer, { header: `\uFEFF${JSON.stringify(header())}`, payload: carolClaims() }),
    'not-ijson',
  ],
  [
    'invalid UTF-8 in the payload',
    () =>
      rawToken(issuer, {
        header: header(),
        payload: Buffer.concat([
          Buffer.from(JSON.stringify(carolClaims()).slice(0, -1)),
          Buffer.from([0x2c, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]),
        ]),
      }),
    'not-ijson',
  ],
  [
    'a lone surrogate in a string',
    () => rawToken(issuer, { header: header(), payload: JSON.stringify(carolClaims()).replace('"jti":"', '"jti":"\\ud800') }),
    'not-ijson',
  ],
  [
    'a raw control character in a string (JSON.parse refuses it)',
    () => rawToken(issuer, { header: header(), payload: JSON.stringify(carolClaims()).replace('"jti":"', '"jti":"\t') }),
    'not-ijson',
  ],
  [
    'a noncharacter in a string',
    () => rawToken(issuer, { header: header(), payload: JSON.stringify(carolClaims()).replace('"jti":"', '"jti":"\\uffff') }),
    'not-ijson',
  ],
  ['a 1 MB token', () => rawToken(issuer, { header: header(), payload: carolClaims({ pad: 'x'.repeat(1024 * 1024) }) }), 'too-large'],
  ['typ missing', () => rawToken(issuer, { header: { alg: 'EdDSA', kid: issuer.privateJwk.kid }, payload: carolClaims() }), 'type'],
  ['typ JWT', () => rawToken(issuer, { header: header({ typ: 'JWT' }), payload: carolClaims() }), 'type'],
  [
    'typ of another application',
    () => rawToken(issuer, { header: header({ typ: 'application/other-approval+jwt' }), payload: carolClaims() }),
    'type',
  ],
  ['a wrong iss', () => rawToken(issuer, { header: header(), payload: carolClaims({ iss: 'https://evil.example.com' }) }), 'issuer'],
  ['iss missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ iss: undefined }) }), 'claims'],
  ['aud for another cluster', () => rawToken(issuer, { header: header(), payload: carolClaims({ aud: 'staging-eu-1' }) }), 'audience'],
  [
    'aud as an array holding this cluster',
    () => rawToken(issuer, { header: header(), payload: carolClaims({ aud: [CLUSTER] }) }),
    'audience',
  ],
  ['aud missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ aud: undefined }) }), 'audience'],
  ['exp missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ exp: undefined }) }), 'claims'],
  ['exp as a string', () => rawToken(issuer, { header: header(), payload: carolClaims({ exp: String(NOW + 3600) }) }), 'claims'],
  [
    'exp as 1e400',
    () => rawToken(issuer, { header: header(), payload: JSON.stringify(carolClaims({ exp: 0 })).replace('"exp":0', '"exp":1e400') }),
    'not-ijson',
  ],
  ['iat missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ iat: undefined }) }), 'claims'],
  [
    'exp - iat over maxTtl (25h)',
    () => rawToken(issuer, { header: header(), payload: carolClaims({ iat: NOW - 60, exp: NOW - 60 + 25 * 3600 }) }),
    'lifetime',
  ],
  ['exp before iat', () => rawToken(issuer, { header: header(), payload: carolClaims({ iat: NOW - 60, exp: NOW - 120 }) }), 'lifetime'],
  [
    'iat in the future beyond the skew',
    () => rawToken(issuer, { header: header(), payload: carolClaims({ iat: NOW + 120, exp: NOW + 3600 }) }),
    'not-yet-valid',
  ],
  ['nbf in the future', () => rawToken(issuer, { header: header(), payload: carolClaims({ nbf: NOW + 600 }) }), 'not-yet-valid'],
  ['nbf as a string', () => rawToken(issuer, { header: header(), payload: carolClaims({ nbf: 'now' }) }), 'claims'],
  [
    'expired beyond the skew',
    () => rawToken(issuer, { header: header(), payload: carolClaims({ iat: NOW - 7200, exp: NOW - 61 }) }),
    'expired',
  ],
  ['jti missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ jti: undefined }) }), 'claims'],
  ['jti empty', () => rawToken(issuer, { header: header(), payload: carolClaims({ jti: '' }) }), 'claims'],
  ['sub missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ sub: undefined }) }), 'claims'],
  ['sub a number', () => rawToken(issuer, { header: header(), payload: carolClaims({ sub: 42 }) }), 'claims'],
  ['sub empty after trimming', () => rawToken(issuer, { header: header(), payload: carolClaims({ sub: '  ' }) }), 'identity'],
  [
    'sub with a zero-width space',
    () => rawToken(issuer, { header: header(), payload: carolClaims({ sub: 'car\u200Bol@example.com' }) }),
    'identity',
  ],
  ['sub with an inner space', () => rawToken(issuer, { header: header(), payload: carolClaims({ sub: 'carol smith' }) }), 'identity'],
  ['sub with a control character', () => rawToken(issuer, { header: header(), payload: carolClaims({ sub: 'carol\u0007' }) }), 'identity'],
  ['twokey claim missing', () => rawToken(issuer, { header: header(), payload: carolClaims({ twokey: undefined }) }), 'claims'],
  ['twokey claim an array', () => rawToken(issuer, { header: header(), payload: carolClaims({ twokey: [] }) }), 'claims'],
  [
    'twokey.change missing',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ change: undefined })) }),
    'claims',
  ],
  ['twokey.change empty', () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ change: ' ' })) }), 'claims'],
  [
    'twokey.digest missing',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ digest: undefined })) }),
    'claims',
  ],
  [
    'twokey.action missing',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ action: undefined })) }),
    'claims',
  ],
  [
    'twokey.requester not a valid identity',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ requester: '' })) }),
    'identity',
  ],
  ['a wrong name', () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ name: 'api-canary' })) }), 'binding'],
  [
    'a wrong namespace',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ namespace: 'staging' })) }),
    'binding',
  ],
  [
    'a wrong resource',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ resource: 'statefulsets.apps' })) }),
    'binding',
  ],
  ['a wrong action', () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ action: 'delete' })) }), 'binding'],
  [
    'a wrong digest',
    () => rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ digest: `sha256:${'0'.repeat(64)}` })) }),
    'binding',
  ],
  [
    'the digest in upper case',
    () =>
      rawToken(issuer, { header: header(), payload: carolClaims(twokeyClaim({ digest: bindingFor('deploy', api).digest.toUpperCase() })) }),
    'binding',
  ],
];

describe('a hostile approval does not count, and does not veto the valid one', () => {
  it.each(cases)('%s', async (_name, makeToken, code) => {
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': await makeToken() });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob')?.status).toBe('counted');
    expect(report(verdict, 'approval.twokey.dev/carol')).toMatchObject({ status: 'not-counted', code });
    expect(verdict.message).toContain('approval.twokey.dev/carol: ');
    expect(verdict.message).toContain('1 of 2 required approvals');
  });
});

describe('time is judged with the clock skew', () => {
  it('counts an approval that expired less than the skew ago', async () => {
    const carol = rawToken(issuer, { header: header(), payload: carolClaims({ iat: NOW - 3600, exp: NOW - 30 }) });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(true);
  });

  it('counts an approval issued within the skew ahead of our clock', async () => {
    const carol = rawToken(issuer, { header: header(), payload: carolClaims({ iat: NOW + 30, exp: NOW + 3600 }) });
    expect((await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol })).allowed).toBe(true);
  });

  it('accepts typ written as application/TWOKEY-APPROVAL+JWT', async () => {
    const carol = rawToken(issuer, { header: header({ typ: 'application/TWOKEY-APPROVAL+JWT' }), payload: carolClaims() });
    expect((await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol })).allowed).toBe(true);
  });

  it('warns when a counted approval is about to expire', async () => {
    const carol = rawToken(issuer, { header: header(), payload: carolClaims({ exp: NOW + 120 }) });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(true);
    expect(verdict.warnings).toContain('twokey: approval approval.twokey.dev/carol expires in 120s');
  });
});

describe('the same approval, or the same person, counts once', () => {
  it('counts a byte-identical copy once', async () => {
    const token = await bob();
    const verdict = await createWith({ 'approval.twokey.dev/bob': token, 'approval.twokey.dev/bob-again': token });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob-again')?.code).toBe('duplicate');
  });

  it('counts a copy with a re-encoded signature once', async () => {
    const token = await bob();
    const reencoded = reencodedSignature(token);
    expect(reencoded).not.toBe(token);
    const verdict = await createWith({ 'approval.twokey.dev/bob': token, 'approval.twokey.dev/bob-reencoded': reencoded });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob')?.status).toBe('counted');
    expect(report(verdict, 'approval.twokey.dev/bob-reencoded')?.status).toBe('not-counted');
  });

  it('counts a copy with surrounding whitespace once', async () => {
    const token = await bob();
    const verdict = await createWith({ 'approval.twokey.dev/bob': token, 'approval.twokey.dev/bob-block': `${token}\n` });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob-block')?.code).toBe('duplicate');
  });

  it('measures a token without the whitespace around it, so a padded copy is no worse', async () => {
    const padded = `${await bob()}${' '.repeat(9000)}\n`;
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': padded, 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(true);
    expect(report(verdict, 'approval.twokey.dev/bob')?.status).toBe('counted');
  });

  it.each([
    ['upper case and a trailing space', 'Bob@Example.com '],
    ['fullwidth letters (NFKC)', 'ｂｏｂ@example.com'],
    ['a ligature-free compatibility form (NFKC: ℬ → B)', 'ℬob@example.com'],
  ])('treats %s as the same approver', async (_name, variant) => {
    const second = await approve(issuer, 'deploy', api, { approver: variant });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/bob-2': second });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob-2')?.code).toBe('duplicate');
  });

  it('refuses the same person written with a zero-width space (not an identity)', async () => {
    const second = await approve(issuer, 'deploy', api, { approver: 'b\u200Bob@example.com' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/bob-2': second });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob-2')?.code).toBe('identity');
  });

  describe('copies never crowd out another approval under the read limit', () => {
    const twoRead = async () => ({ ...snapshot, policy: makePolicy({ limits: { maxApprovalAnnotations: 2 } }) });
    // The copy written as a signer writes it stands for the others; among equals, the first.
    it.each([
      ['byte-identical', (t: string) => t, 'a-bob'],
      ['re-encoded', reencodedSignature, 'b-bob-again'],
      ['padded with whitespace', (t: string) => ` ${t}\n`, 'b-bob-again'],
    ])('%s copies sorted first', async (_name, copy, standing) => {
      const token = await bob();
      const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
      const annotations = {
        'approval.twokey.dev/a-bob': copy(token),
        'approval.twokey.dev/b-bob': copy(token),
        'approval.twokey.dev/b-bob-again': token,
        'approval.twokey.dev/c-carol': carol,
      };
      const verdict = await decide(request({ operation: 'CREATE', object: withAnnotations(api, annotations) }), ctx(await twoRead()));
      expect(verdict.allowed).toBe(true);
      expect(report(verdict, `approval.twokey.dev/${standing}`)?.status).toBe('counted');
      expect(report(verdict, 'approval.twokey.dev/b-bob')).toMatchObject({
        code: 'duplicate',
        detail: `the same token as approval.twokey.dev/${standing}`,
      });
      expect(report(verdict, 'approval.twokey.dev/c-carol')?.status).toBe('counted');
    });

    it('never takes a copy whose signed part was re-encoded for the token (its signature does not cover it)', async () => {
      // Other unused bits in the last character of the header or payload: the same bytes, other text.
      let change = 'CHG0031337';
      let token = await bob();
      let parts = token.split('.') as [string, string, string];
      for (let i = 0; !otherUnusedBits(parts[0]) && !otherUnusedBits(parts[1]); i++) {
        change = `CHG${1000 + i}`;
        token = await approve(issuer, 'deploy', api, { approver: 'bob@example.com', change });
        parts = token.split('.') as [string, string, string];
      }
      const [header, payload, signature] = parts;
      const tampered = otherUnusedBits(header)
        ? `${otherUnusedBits(header)}.${payload}.${signature}`
        : `${header}.${otherUnusedBits(payload)}.${signature}`;
      expect(Buffer.from(tampered.split('.')[0] as string, 'base64url')).toEqual(Buffer.from(header, 'base64url'));
      expect(tampered).not.toBe(token);
      const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com', change });
      const verdict = await createWith({
        'approval.twokey.dev/a-junk': tampered,
        'approval.twokey.dev/b-bob': token,
        'approval.twokey.dev/c-carol': carol,
      });
      expect(verdict.allowed).toBe(true);
      expect(report(verdict, 'approval.twokey.dev/a-junk')?.status).toBe('not-counted');
      expect(report(verdict, 'approval.twokey.dev/b-bob')?.status).toBe('counted');
    });

    it('keeps a refusal bounded however many copies there are', async () => {
      const token = await bob();
      const copies = Object.fromEntries(
        Array.from({ length: 2000 }, (_, i) => [`approval.twokey.dev/bob-${String(i).padStart(4, '0')}`, token]),
      );
      const verdict = await createWith(copies);
      expect(verdict.allowed).toBe(false);
      expect(verdict.message).toContain(
        "1999 annotations hold copies of another annotation's token, which is judged once: approval.twokey.dev/bob-0001 (approval.twokey.dev/bob-0000),",
      );
      expect(verdict.message?.length).toBeLessThan(8_000);
    });
  });

  it('never makes the verdict worse: two valid approvals and a duplicate still admit', async () => {
    const token = await bob();
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
    const verdict = await createWith({ 'approval.twokey.dev/a': token, 'approval.twokey.dev/b': token, 'approval.twokey.dev/c': carol });
    expect(verdict.allowed).toBe(true);
    expect(verdict.warnings.some((w) => w.includes('approval.twokey.dev/b did not count'))).toBe(true);
  });
});

describe('nobody approves their own change', () => {
  it('does not count the approver who is the Kubernetes user, however written', async () => {
    const self = await approve(issuer, 'deploy', api, { approver: 'Deployer@Example.com' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/self': self }, 'deployer@example.com');
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/self')?.code).toBe('self');
  });

  it('does not count an approver named as the requester by one of the change approvals', async () => {
    const bobNamingCarol = await approve(issuer, 'deploy', api, { approver: 'bob@example.com', requester: 'carol@example.com' });
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': bobNamingCarol, 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/carol')?.code).toBe('requester');
  });

  it('does not count the approver whose own token names them as requester', async () => {
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com', requester: 'Carol@example.com' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/carol')?.code).toBe('requester');
  });

  it('refuses a gated request from a user name that is not an identity', async () => {
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
    const verdict = await createWith(
      { 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol },
      'deployer\u200B@example.com',
    );
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toMatch(/is not a valid identity/);
  });
});

describe('approvals are bound to one change of one object in one cluster', () => {
  it('refuses one valid approval alone', async () => {
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob() });
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toContain('1 of 2 required approvals (change "CHG0031337": "bob@example.com")');
  });

  it('refuses approvals for two different change ids, one each', async () => {
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com', change: 'CHG0000002' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(false);
  });

  it('refuses a spec changed after approval', async () => {
    const approvals = {
      'approval.twokey.dev/bob': await bob(),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
    };
    const changed = deployment({ image: 'registry.example.com/api:1.0.1' });
    const verdict = await createWith(approvals, 'deployer@example.com', changed);
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob')?.code).toBe('binding');
  });

  it('refuses an UPDATE that changes the spec while keeping the old approvals', async () => {
    const approvals = {
      'approval.twokey.dev/bob': await bob(),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
    };
    const old = withAnnotations(api, approvals);
    const updated = withAnnotations(deployment({ image: 'registry.example.com/api:2.0.0' }), approvals);
    const verdict = await decide(request({ operation: 'UPDATE', object: updated, oldObject: old }), ctx());
    expect(verdict).toMatchObject({ allowed: false, action: 'deploy' });
  });

  it('refuses approvals copied to another object', async () => {
    const approvals = {
      'approval.twokey.dev/bob': await bob(),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
    };
    const verdict = await createWith(approvals, 'deployer@example.com', deployment({ name: 'worker' }));
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/carol')?.detail).toContain('name "api" (not "worker")');
  });

  it('refuses approvals minted for another cluster', async () => {
    const approvals = {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com', audience: 'staging' }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com', audience: 'staging' }),
    };
    expect((await createWith(approvals)).allowed).toBe(false);
  });

  it('refuses a namespace deletion approval reused on a recreated namespace (new UID)', async () => {
    const first = namespaceObject('team-a', { labels: { 'twokey.dev/critical': 'true' }, uid: 'uid-first' });
    const approvals = {
      'approval.twokey.dev/bob': await approve(issuer, 'delete', first, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'delete', first, { approver: 'carol@example.com' }),
    };
    const admitted = await decide(request({ operation: 'DELETE', oldObject: withAnnotations(first, approvals) }), ctx());
    expect(admitted.allowed).toBe(true);
    const recreated = namespaceObject('team-a', { labels: { 'twokey.dev/critical': 'true' }, uid: 'uid-second' });
    const verdict = await decide(request({ operation: 'DELETE', oldObject: withAnnotations(recreated, approvals) }), ctx());
    expect(verdict).toMatchObject({ allowed: false, action: 'delete' });
  });

  it('refuses a deploy approval used for a delete', async () => {
    const approvals = {
      'approval.twokey.dev/bob': await bob(),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
    };
    const verdict = await decide(request({ operation: 'DELETE', oldObject: withAnnotations(api, approvals) }), ctx());
    expect(verdict).toMatchObject({ allowed: false, action: 'delete' });
  });
});

describe('what is gated and what is not', () => {
  it('refuses removing the critical label without approvals (unprotect)', async () => {
    const labelled = deployment({ namespace: 'team-a', labels: { 'twokey.dev/critical': 'true' } });
    const verdict = await decide(
      request({ operation: 'UPDATE', object: withLabels(labelled, { 'twokey.dev/critical': undefined }), oldObject: labelled }),
      ctx(),
    );
    expect(verdict).toMatchObject({ allowed: false, action: 'unprotect' });
  });

  it('refuses changing the critical label to another value (unprotect)', async () => {
    const ns = namespaceObject('team-a', { labels: { 'twokey.dev/critical': 'true' } });
    const verdict = await decide(
      request({ operation: 'UPDATE', object: withLabels(ns, { 'twokey.dev/critical': 'false' }), oldObject: ns }),
      ctx(),
    );
    expect(verdict).toMatchObject({ allowed: false, action: 'unprotect' });
  });

  it('gives a dry run exactly the verdict of the real request', async () => {
    const cases: Array<Record<string, string>> = [{}, { 'approval.twokey.dev/bob': await bob() }];
    for (const annotations of cases) {
      const object = withAnnotations(api, annotations);
      const real = await decide(request({ operation: 'CREATE', object }), ctx());
      const dry = await decide(request({ operation: 'CREATE', object, dryRun: true }), ctx());
      expect(dry).toEqual(real);
    }
  });

  it('admits a metadata-only update of a critical workload (how approvals get attached)', async () => {
    const annotated = withAnnotations(withLabels(api, { team: 'payments' }), { 'approval.twokey.dev/bob': 'not-even-a-token' });
    const verdict = await decide(request({ operation: 'UPDATE', object: annotated, oldObject: api }), ctx());
    expect(verdict).toMatchObject({ allowed: true, action: undefined });
  });

  it('admits scaling (spec.replicas is not part of a deploy)', async () => {
    const verdict = await decide(request({ operation: 'UPDATE', object: deployment({ replicas: 10 }), oldObject: api }), ctx());
    expect(verdict.allowed).toBe(true);
  });

  it('admits the namespace controller deleting inside a namespace being deleted', async () => {
    const verdict = await decide(
      request({ operation: 'DELETE', oldObject: api, user: 'system:serviceaccount:kube-system:namespace-controller', noName: true }),
      ctx({ namespaces: beingDeleted }),
    );
    expect(verdict).toMatchObject({ allowed: true, action: undefined });
  });

  it('refuses the same deletion by anyone else, and reads the name from the old object', async () => {
    const verdict = await decide(request({ operation: 'DELETE', oldObject: api, user: 'alice@example.com', noName: true }), ctx());
    expect(verdict).toMatchObject({ allowed: false, action: 'delete', target: { name: 'api', namespace: 'payments' } });
  });

  it('admits a non-critical object', async () => {
    const verdict = await decide(request({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }), ctx());
    expect(verdict).toMatchObject({ allowed: true, action: undefined });
  });

  it.each([
    ['other case', 'System:ServiceAccount:kube-system:namespace-controller'],
    ['full-width letters', 'ｓｙｓｔｅｍ:serviceaccount:kube-system:namespace-controller'],
    ['a trailing space', 'system:serviceaccount:kube-system:namespace-controller '],
  ])('does not take a look-alike of an exempt deleter (%s) for it', async (_name, user) => {
    const workload = await decide(request({ operation: 'DELETE', oldObject: api, user }), ctx());
    expect(workload).toMatchObject({ allowed: false, action: 'delete' });
    const ns = namespaceObject('payments');
    const namespace = await decide(request({ operation: 'DELETE', oldObject: ns, user }), ctx());
    expect(namespace).toMatchObject({ allowed: false, action: 'delete' });
  });

  it('says why approvals for another change id did not count', async () => {
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com', change: 'CHG9999999' });
    const verdict = await createWith({ 'approval.twokey.dev/bob': await bob(), 'approval.twokey.dev/carol': carol });
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toContain(
      'approval.twokey.dev/carol: approves change "CHG9999999", not "CHG0031337" (approvals of different change ids do not add up)',
    );
  });

  const owner = { apiVersion: 'example.com/v1', kind: 'Database', name: 'ghost', uid: 'uid-of-nothing', blockOwnerDeletion: true };

  it('gates giving a critical workload an owner (the garbage collector would delete it) as unprotect', async () => {
    const owned = withOwners(api, [owner]);
    const refused = await decide(request({ operation: 'UPDATE', object: owned, oldObject: api }), ctx());
    expect(refused).toMatchObject({ allowed: false, action: 'unprotect' });
    const approvals = {
      'approval.twokey.dev/bob': await approve(issuer, 'unprotect', owned, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'unprotect', owned, { approver: 'carol@example.com' }),
    };
    const admitted = await decide(request({ operation: 'UPDATE', object: withAnnotations(owned, approvals), oldObject: api }), ctx());
    expect(admitted).toMatchObject({ allowed: true, action: 'unprotect' });
    // Changing an existing owner is a new owner; removing owners is not gated.
    const changed = withOwners(api, [{ ...owner, uid: 'uid-of-another' }]);
    expect((await decide(request({ operation: 'UPDATE', object: changed, oldObject: owned }), ctx())).action).toBe('unprotect');
    expect(await decide(request({ operation: 'UPDATE', object: api, oldObject: owned }), ctx())).toMatchObject({
      allowed: true,
      action: undefined,
    });
  });

  it('tells approvers and the deployer when a critical workload has owners (their deletion deletes it)', async () => {
    const owned = withOwners(api, [owner]);
    const refused = await decide(request({ operation: 'CREATE', object: owned }), ctx());
    expect(refused.message).toContain('Note: owned by Database/ghost: deleting an owner deletes this workload without delete approvals.');
    const approvals = {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', owned, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', owned, { approver: 'carol@example.com' }),
    };
    const admitted = await decide(request({ operation: 'CREATE', object: withAnnotations(owned, approvals) }), ctx());
    expect(admitted.allowed).toBe(true);
    expect(admitted.warnings[0]).toBe('twokey: owned by Database/ghost: deleting an owner deletes this workload without delete approvals');
    const unowned = await decide(request({ operation: 'CREATE', object: withAnnotations(api, approvals) }), ctx());
    expect(unowned.warnings).toEqual([]);
  });

  it('gates giving a critical namespace an owner as unprotect', async () => {
    const ns = namespaceObject('team-a', { labels: { 'twokey.dev/critical': 'true' } });
    const verdict = await decide(request({ operation: 'UPDATE', object: withOwners(ns, [owner]), oldObject: ns }), ctx());
    expect(verdict).toMatchObject({ allowed: false, action: 'unprotect' });
  });

  it.each([
    ['labelled critical', namespaceObject('team-a', { labels: { 'twokey.dev/critical': 'true' } })],
    ['critical by the policy list', namespaceObject('payments')],
  ])('refuses the garbage collector deleting a namespace %s, owner or not', async (_how, ns) => {
    const gc = 'system:serviceaccount:kube-system:generic-garbage-collector';
    const owned = withOwners(ns, [owner]);
    expect(await decide(request({ operation: 'UPDATE', object: owned, oldObject: ns }), ctx())).toMatchObject({
      allowed: false,
      action: 'unprotect',
    });
    // Had the owner got on some other way, deleting the namespace still needs approvals.
    for (const oldObject of [owned, ns]) {
      const verdict = await decide(request({ operation: 'DELETE', oldObject, user: gc }), ctx());
      expect(verdict).toMatchObject({ allowed: false, action: 'delete' });
    }
    const approvals = {
      'approval.twokey.dev/bob': await approve(issuer, 'delete', ns, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'delete', ns, { approver: 'carol@example.com' }),
    };
    const approved = await decide(request({ operation: 'DELETE', oldObject: withAnnotations(owned, approvals), user: gc }), ctx());
    expect(approved).toMatchObject({ allowed: true, action: 'delete' });
  });

  it.each(['system:serviceaccount:kube-system:namespace-controller', 'system:serviceaccount:kube-system:generic-garbage-collector'])(
    'gates %s deleting a workload labelled critical in a namespace that is not critical',
    async (user) => {
      const labelled = deployment({ namespace: 'team-a', labels: { 'twokey.dev/critical': 'true' } });
      // Even while its namespace is being deleted: that deletion's approvals never covered it.
      const refused = await decide(
        request({ operation: 'DELETE', oldObject: labelled, user, noName: true }),
        ctx({ namespaces: beingDeleted }),
      );
      expect(refused).toMatchObject({ allowed: false, action: 'delete' });
      const approvals = {
        'approval.twokey.dev/bob': await approve(issuer, 'delete', labelled, { approver: 'bob@example.com' }),
        'approval.twokey.dev/carol': await approve(issuer, 'delete', labelled, { approver: 'carol@example.com' }),
      };
      const admitted = await decide(
        request({ operation: 'DELETE', oldObject: withAnnotations(labelled, approvals), user, noName: true }),
        ctx({ namespaces: beingDeleted }),
      );
      expect(admitted).toMatchObject({ allowed: true, action: 'delete' });
      // In a critical namespace being deleted, whose own deletion was gated, the cleanup stays exempt.
      const inCritical = deployment({ namespace: 'payments', labels: { 'twokey.dev/critical': 'true' } });
      const cleanup = await decide(
        request({ operation: 'DELETE', oldObject: inCritical, user, noName: true }),
        ctx({ namespaces: beingDeleted }),
      );
      expect(cleanup).toMatchObject({ allowed: true, action: undefined });
    },
  );

  describe('a namespace made critical after the fact', () => {
    const namespaceController = 'system:serviceaccount:kube-system:namespace-controller';
    const labelled = deployment({ namespace: 'team-a', labels: critical });
    const view = (criticality: 'critical' | 'not-critical', deleting: boolean): NamespaceView => ({
      criticality: () => criticality,
      deletion: () => (deleting ? 'deleting' : 'active'),
    });

    it('cannot be made critical once its deletion has begun, so its labelled workloads keep needing their own approvals', async () => {
      const ns = namespaceObject('team-a');
      // The agent deletes team-a (not critical, not gated); the cleanup of the labelled workload is refused.
      expect(await decide(request({ operation: 'DELETE', oldObject: ns, user: 'agent' }), ctx())).toMatchObject({ allowed: true });
      const terminating = structuredClone(ns);
      (terminating.metadata as JsonObject).deletionTimestamp = '2026-11-27T09:00:00Z';
      // Labelling the terminating namespace critical would exempt the namespace controller: refused, saying what to do.
      const label = await decide(
        request({ operation: 'UPDATE', object: withLabels(terminating, critical), oldObject: terminating, user: 'agent' }),
        ctx({ namespaces: view('not-critical', true) }),
      );
      expect(label.allowed).toBe(false);
      expect(label.message).toContain(
        'namespace "team-a" is being deleted, and was not critical when its deletion began: it cannot be made critical now',
      );
      // Any other update of it, and labelling a namespace that is not being deleted, stay ungated.
      const other = await decide(
        request({ operation: 'UPDATE', object: withLabels(terminating, { team: 'a' }), oldObject: terminating, user: 'agent' }),
        ctx(),
      );
      expect(other).toMatchObject({ allowed: true, action: undefined });
      const protect = await decide(request({ operation: 'UPDATE', object: withLabels(ns, critical), oldObject: ns, user: 'agent' }), ctx());
      expect(protect).toMatchObject({ allowed: true, action: undefined });
      // A namespace critical before its deletion began was approved for deletion: its cleanup stays exempt.
      const admitted = await decide(
        request({ operation: 'DELETE', oldObject: labelled, user: namespaceController, noName: true }),
        ctx({ namespaces: view('critical', true), forceCritical: true }),
      );
      expect(admitted).toMatchObject({ allowed: true, action: undefined });
    });

    it('does not let the garbage collector delete a labelled workload once its namespace is labelled critical', async () => {
      const gc = 'system:serviceaccount:kube-system:generic-garbage-collector';
      const owned = withOwners(labelled, [ghost]);
      for (const namespaces of [view('not-critical', false), view('critical', false)]) {
        const verdict = await decide(request({ operation: 'DELETE', oldObject: owned, user: gc }), ctx({ namespaces }));
        expect(verdict).toMatchObject({ allowed: false, action: 'delete' });
      }
      const routed = await decide(
        request({ operation: 'DELETE', oldObject: owned, user: gc }),
        ctx({ namespaces: view('critical', false), forceCritical: true }),
      );
      expect(routed).toMatchObject({ allowed: false, action: 'delete' });
    });
  });

  it('gates by the stricter view when the namespace watch still says critical', async () => {
    const labelled = deployment({ namespace: 'team-a', labels: { 'twokey.dev/critical': 'true' } });
    const unlabelled = withLabels(labelled, { 'twokey.dev/critical': undefined });
    const watchSaysCritical = { criticality: () => 'critical' as const, deletion: () => 'active' as const };
    const verdict = await decide(
      request({ operation: 'UPDATE', object: unlabelled, oldObject: labelled }),
      ctx({ namespaces: watchSaysCritical }),
    );
    expect(verdict).toMatchObject({ allowed: false, action: 'unprotect' });
    // On /validate/critical the apiserver itself vouches for the namespace: the label stays irrelevant.
    const routed = await decide(request({ operation: 'UPDATE', object: unlabelled, oldObject: labelled }), ctx({ forceCritical: true }));
    expect(routed).toMatchObject({ allowed: true, action: undefined });
  });

  it('stops counting the approvals of an issuer once its JWKS is emptied (keys withdrawn)', async () => {
    const annotations = {
      'approval.twokey.dev/bob': await bob(),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
    };
    // Verified once with the key: the verified-token cache must not outlive the key ring.
    expect((await createWith(annotations)).allowed).toBe(true);
    const withdrawn = { ...snapshot, keys: new KeyRing([await importJwks(issuer.issuer, { keys: [] }, 'test')]) };
    const verdict = await decide(request({ operation: 'CREATE', object: withAnnotations(api, annotations) }), ctx(withdrawn));
    expect(verdict.allowed).toBe(false);
    expect(report(verdict, 'approval.twokey.dev/bob')).toMatchObject({ code: 'kid' });
    expect(verdict.message).toContain('holds no usable key (its keys were withdrawn)');
  });

  it('honours a policy without the default exempt deleters', async () => {
    const strict = await makeSnapshot([issuer], makePolicy({ exemptDeleters: { namespaceController: [], garbageCollector: [] } }));
    const verdict = await decide(
      request({ operation: 'DELETE', oldObject: api, user: 'system:serviceaccount:kube-system:namespace-controller', noName: true }),
      { ...strict, namespaces: beingDeleted, forceCritical: false, now: NOW },
    );
    expect(verdict.allowed).toBe(false);
  });
});

describe('bounded reading', () => {
  const junk = (count: number, prefix: string) =>
    Object.fromEntries(
      Array.from({ length: count }, (_, i) => [`approval.twokey.dev/${prefix}-${String(i).padStart(3, '0')}`, `junk.${i}.x`]),
    );

  it('reads 500 approval annotations in bounded time and still admits the valid ones read first', async () => {
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
    const started = performance.now();
    const verdict = await createWith({ 'approval.twokey.dev/a-bob': await bob(), 'approval.twokey.dev/a-carol': carol, ...junk(500, 'z') });
    expect(performance.now() - started).toBeLessThan(2000);
    expect(verdict.allowed).toBe(true);
    expect(verdict.approvals.filter((a) => a.status === 'not-read')).toHaveLength(502 - 50);
  });

  it('says so in the refusal when the valid ones are past the limit', async () => {
    const carol = await approve(issuer, 'deploy', api, { approver: 'carol@example.com' });
    const verdict = await createWith({ ...junk(500, 'a'), 'approval.twokey.dev/z-bob': await bob(), 'approval.twokey.dev/z-carol': carol });
    expect(verdict.allowed).toBe(false);
    expect(verdict.message).toContain(
      '452 more approval annotations were not read (only the first 50 distinct tokens are read), e.g. approval.twokey.dev/a-050',
    );
    expect(verdict.message?.length).toBeLessThan(12_000);
  });
});

describe('every gated aspect of one request needs approvals of its own', () => {
  /** Approvals of one action for the object as it will be, one annotation per approver and action. */
  const approvalsOf = async (action: 'deploy' | 'unprotect', object: JsonObject, approvers = ['bob@example.com', 'carol@example.com']) =>
    Object.fromEntries(
      await Promise.all(
        approvers.map(async (approver) => [
          `approval.twokey.dev/${approver.split('@')[0]}-${action}`,
          await approve(issuer, action, object, { approver }),
        ]),
      ),
    );
  const update = (object: JsonObject, oldObject: JsonObject) => decide(request({ operation: 'UPDATE', object, oldObject }), ctx());
  const labelled = deployment({ namespace: 'team-a', labels: { 'twokey.dev/critical': 'true' } });

  it('refuses a new image hidden in an owner handover that only unprotect approvals cover', async () => {
    const handedOver = withOwners(deployment({ image: 'registry.example.com/api:6.6.6' }), [ghost]);
    const verdict = await update(withAnnotations(handedOver, await approvalsOf('unprotect', handedOver)), api);
    expect(verdict).toMatchObject({
      allowed: false,
      action: 'deploy+unprotect',
      aspects: [
        { action: 'deploy', allowed: false, digest: bindingFor('deploy', handedOver).digest },
        { action: 'unprotect', allowed: true, change: 'CHG0031337', approvers: ['bob@example.com', 'carol@example.com'] },
      ],
    });
    expect(verdict.message).toMatch(
      /^twokey: deploy\+unprotect of deployments\.apps payments\/api refused: this one request is a deploy and an unprotect, /,
    );
    expect(verdict.message).toContain(
      `The deploy needs approvals bound to digest ${bindingFor('deploy', handedOver).digest}: 0 of 2 required approvals.`,
    );
    expect(verdict.message).toContain(
      `To approve: twokey approve --action deploy --digest ${bindingFor('deploy', handedOver).digest} ...,`,
    );
    expect(verdict.auditAnnotations).toMatchObject({ decision: 'refused', action: 'deploy+unprotect', 'unprotect-change': 'CHG0031337' });
  });

  it('refuses a new image with the critical label removed when only unprotect approvals cover it', async () => {
    const unlabelled = withLabels(deployment({ namespace: 'team-a', image: 'registry.example.com/api:6.6.6' }), {});
    const verdict = await update(withAnnotations(unlabelled, await approvalsOf('unprotect', unlabelled)), labelled);
    expect(verdict).toMatchObject({ allowed: false, action: 'deploy+unprotect' });
    expect(verdict.aspects.map((a) => [a.action, a.allowed])).toEqual([
      ['deploy', false],
      ['unprotect', true],
    ]);
  });

  it('refuses deploy approvals alone, naming the unprotect that lacks them', async () => {
    const handedOver = withOwners(deployment({ image: 'registry.example.com/api:2.0.0' }), [ghost]);
    const verdict = await update(withAnnotations(handedOver, await approvalsOf('deploy', handedOver)), api);
    expect(verdict).toMatchObject({ allowed: false, action: 'deploy+unprotect' });
    expect(verdict.message).toContain(`The unprotect needs approvals bound to digest ${bindingFor('unprotect', handedOver).digest}`);
    expect(verdict.message).toContain('The deploy needs approvals bound to digest');
    expect(verdict.message).toContain('approved for change "CHG0031337" by "bob@example.com", "carol@example.com".');
  });

  it('admits when each aspect reaches its quorum, the same approvers approving both', async () => {
    const handedOver = withOwners(deployment({ image: 'registry.example.com/api:2.0.0' }), [ghost]);
    const approvals = { ...(await approvalsOf('deploy', handedOver)), ...(await approvalsOf('unprotect', handedOver)) };
    const verdict = await update(withAnnotations(handedOver, approvals), api);
    expect(verdict).toMatchObject({ allowed: true, action: 'deploy+unprotect' });
    expect(verdict.aspects.every((a) => a.allowed)).toBe(true);
    // A token counts where it is bound; that it is no token of the other aspect is no warning.
    expect(verdict.approvals.map((a) => [a.key, a.status, a.action])).toEqual([
      ['approval.twokey.dev/bob-deploy', 'counted', 'deploy'],
      ['approval.twokey.dev/bob-unprotect', 'counted', 'unprotect'],
      ['approval.twokey.dev/carol-deploy', 'counted', 'deploy'],
      ['approval.twokey.dev/carol-unprotect', 'counted', 'unprotect'],
    ]);
    expect(verdict.warnings).toEqual(['twokey: owned by Database/ghost: deleting an owner deletes this workload without delete approvals']);
    expect(verdict.auditAnnotations).toMatchObject({
      decision: 'admitted',
      action: 'deploy+unprotect',
      'deploy-digest': bindingFor('deploy', handedOver).digest,
      'deploy-approvers': 'bob@example.com,carol@example.com',
      'unprotect-digest': bindingFor('unprotect', handedOver).digest,
    });
  });

  it('tallies each aspect by the rules: the requesting user does not approve its deploy half', async () => {
    const handedOver = withOwners(deployment({ image: 'registry.example.com/api:2.0.0' }), [ghost]);
    const approvals = {
      ...(await approvalsOf('deploy', handedOver, ['bob@example.com', 'deployer@example.com'])),
      ...(await approvalsOf('unprotect', handedOver)),
    };
    const verdict = await update(withAnnotations(handedOver, approvals), api);
    expect(verdict).toMatchObject({
      allowed: false,
      aspects: [
        { action: 'deploy', allowed: false },
        { action: 'unprotect', allowed: true },
      ],
    });
    expect(verdict.message).toContain(
      'approval.twokey.dev/deployer-deploy (deploy): approver "deployer@example.com" is the user making this request',
    );
  });

  it('lets the CLI read each aspect its digest from the refusal, and a single action its own', async () => {
    const handedOver = withOwners(deployment({ image: 'registry.example.com/api:2.0.0' }), [ghost]);
    const both = await update(handedOver, api);
    expect(digestFromRefusal(`admission webhook "x" denied the request: ${both.message}`, 'deploy')).toBe(
      bindingFor('deploy', handedOver).digest,
    );
    expect(digestFromRefusal(`admission webhook "x" denied the request: ${both.message}`, 'unprotect')).toBe(
      bindingFor('unprotect', handedOver).digest,
    );
    expect(digestFromRefusal(both.message as string, 'delete')).toBeUndefined();
    const single = await createWith({});
    expect(digestFromRefusal(single.message as string)).toBe(bindingFor('deploy', api).digest);
    expect(digestFromRefusal(single.message as string, 'deploy')).toBe(bindingFor('deploy', api).digest);
    expect(digestFromRefusal(single.message as string, 'unprotect')).toBeUndefined();
  });
});

describe('unprotect approvals are bound to the state the change leaves', () => {
  const ledger = { apiVersion: 'example.com/v1', kind: 'Database', name: 'ledger-db', uid: 'uid-ledger' };
  const other = { apiVersion: 'example.com/v1', kind: 'Database', name: 'other-db', uid: 'uid-other' };
  const labelled = deployment({ namespace: 'team-a', labels: critical });
  const unprotectApprovals = async (object: JsonObject) => ({
    'approval.twokey.dev/bob': await approve(issuer, 'unprotect', object, { approver: 'bob@example.com' }),
    'approval.twokey.dev/carol': await approve(issuer, 'unprotect', object, { approver: 'carol@example.com' }),
  });
  const update = (object: JsonObject, oldObject: JsonObject) => decide(request({ operation: 'UPDATE', object, oldObject }), ctx());

  it('admits the handover they approve, and says what its approvals bind', async () => {
    const toLedger = withOwners(labelled, [ledger]);
    const refused = await update(toLedger, labelled);
    expect(refused.message).toMatch(
      /^twokey: unprotect of deployments\.apps team-a\/api \(after the change: critical true, owners Database\/ledger-db\) refused: 0 of 2 required approvals/,
    );
    const admitted = await update(withAnnotations(toLedger, await unprotectApprovals(toLedger)), labelled);
    expect(admitted).toMatchObject({ allowed: true, action: 'unprotect', aspects: [{ after: { critical: true, owners: [ledger] } }] });
  });

  it('does not let approvals left over from a handover to one owner approve another owner, a ghost or the label removal', async () => {
    // The object as the approved handover left it: owned by ledger-db, its approvals still attached.
    const handedOver = withAnnotations(withOwners(labelled, [ledger]), await unprotectApprovals(withOwners(labelled, [ledger])));
    for (const [what, next] of [
      ['another owner', withOwners(handedOver, [other])],
      ['another owner besides', withOwners(handedOver, [ledger, other])],
      ['an owner that does not exist', withOwners(handedOver, [ghost])],
      ['the label removed', withLabels(handedOver, { 'twokey.dev/critical': undefined })],
    ] as const) {
      const verdict = await update(next, handedOver);
      expect(verdict, what).toMatchObject({ allowed: false, action: 'unprotect' });
      expect(report(verdict, 'approval.twokey.dev/bob'), what).toMatchObject({ code: 'binding' });
    }
  });

  it('does not let approvals of a label removal approve a handover, nor the reverse', async () => {
    const unlabelled = withLabels(labelled, { 'twokey.dev/critical': undefined });
    const forRemoval = await unprotectApprovals(unlabelled);
    expect((await update(withAnnotations(unlabelled, forRemoval), labelled)).allowed).toBe(true);
    const handover = await update(withAnnotations(withOwners(labelled, [ghost]), forRemoval), labelled);
    expect(handover).toMatchObject({ allowed: false, action: 'unprotect' });
    expect(handover.message).toContain('(after the change: critical true, owners Database/ghost) refused');
    const forHandover = await unprotectApprovals(withOwners(labelled, [ghost]));
    const removal = await update(withAnnotations(unlabelled, forHandover), labelled);
    expect(removal.message).toContain('unprotect of deployments.apps team-a/api (after the change: critical false, owners none) refused');
    // The same for a Namespace: unlabelling approvals do not hand it over.
    const ns = namespaceObject('team-a', { labels: critical });
    const nsUnlabelled = withLabels(ns, { 'twokey.dev/critical': undefined });
    const nsApprovals = await unprotectApprovals(nsUnlabelled);
    expect((await update(withAnnotations(nsUnlabelled, nsApprovals), ns)).allowed).toBe(true);
    expect((await update(withAnnotations(withOwners(ns, [ghost]), nsApprovals), ns)).allowed).toBe(false);
  });

  it('refuses, without crashing, an owner entry that lacks one of the four fields that name it', async () => {
    const verdict = await update(withOwners(labelled, [{ apiVersion: 'example.com/v1', kind: 'Database', name: 'ghost' }]), labelled);
    expect(verdict).toMatchObject({ allowed: false, action: undefined });
    expect(verdict.message).toContain('object: metadata.ownerReferences[0].uid is missing');
  });
});

describe('subresources that keep metadata changes are gated as the main resource', () => {
  const workload = (kind: string, apiVersion: string): JsonObject => ({
    ...deployment({ namespace: 'team-a', labels: critical }),
    apiVersion,
    kind,
  });
  const throughStatus = (object: JsonObject, oldObject: JsonObject, subResource = 'status') =>
    decide(request({ operation: 'UPDATE', object, oldObject, subResource }), ctx());

  it.each([
    ['Deployment', 'apps/v1'],
    ['StatefulSet', 'apps/v1'],
    ['DaemonSet', 'apps/v1'],
    ['CronJob', 'batch/v1'],
  ])('refuses an owner put on a critical %s through its status, and admits it with unprotect approvals', async (kind, apiVersion) => {
    const old = workload(kind, apiVersion);
    const owned = withOwners(old, [ghost]);
    expect(await throughStatus(owned, old)).toMatchObject({ allowed: false, action: 'unprotect' });
    const approvals = {
      'approval.twokey.dev/bob': await approve(issuer, 'unprotect', owned, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'unprotect', owned, { approver: 'carol@example.com' }),
    };
    expect(await throughStatus(withAnnotations(owned, approvals), old)).toMatchObject({ allowed: true, action: 'unprotect' });
  });

  it.each([['StatefulSet'], ['DaemonSet']])('refuses the critical label removed from a %s through its status', async (kind) => {
    const old = workload(kind, 'apps/v1');
    const verdict = await throughStatus(withLabels(old, { 'twokey.dev/critical': undefined }), old);
    expect(verdict).toMatchObject({ allowed: false, action: 'unprotect' });
  });

  it.each(['status', 'finalize'])('refuses a critical Namespace unlabelled or given an owner through %s', async (subResource) => {
    const ns = namespaceObject('team-a', { labels: critical });
    for (const next of [withLabels(ns, { 'twokey.dev/critical': undefined }), withOwners(ns, [ghost])]) {
      expect(await throughStatus(next, ns, subResource)).toMatchObject({ allowed: false, action: 'unprotect' });
    }
    // Listed by the policy, it stays critical without its label.
    const payments = namespaceObject('payments', { labels: critical });
    expect(await throughStatus(namespaceObject('payments'), payments, subResource)).toMatchObject({ allowed: true, action: undefined });
  });

  it('never judges the spec there (the status strategy resets it), nor an update that keeps the label and owners', async () => {
    const old = deployment({ namespace: 'team-a', labels: critical });
    const newImage = deployment({ namespace: 'team-a', labels: critical, image: 'registry.example.com/api:6.6.6' });
    expect(await throughStatus(newImage, old)).toMatchObject({ allowed: true, action: undefined });
    const unlabelledNewImage = withLabels(newImage, { 'twokey.dev/critical': undefined });
    expect(await throughStatus(unlabelledNewImage, old)).toMatchObject({ allowed: false, action: 'unprotect' });
  });

  it('does not gate other subresources, nor other operations on these', async () => {
    const old = deployment({ namespace: 'team-a', labels: critical });
    const owned = withOwners(old, [ghost]);
    expect(await throughStatus(owned, old, 'scale')).toMatchObject({ allowed: true, action: undefined });
    const created = await decide(request({ operation: 'CREATE', object: owned, subResource: 'status' }), ctx());
    expect(created).toMatchObject({ allowed: true, action: undefined });
  });
});

describe("the namespace controller's exemption holds only where a namespace is being deleted", () => {
  const controller = 'system:serviceaccount:kube-system:namespace-controller';
  const collector = 'system:serviceaccount:kube-system:generic-garbage-collector';
  const view = (deletion: 'deleting' | 'active' | 'unknown'): NamespaceView => ({
    criticality: () => 'critical',
    deletion: () => deletion,
  });
  const remove = (user: string, namespaces: NamespaceView, oldObject: JsonObject = api, policy = snapshot) =>
    decide(request({ operation: 'DELETE', oldObject, user, noName: true }), { ...policy, namespaces, forceCritical: false, now: NOW });

  it.each([['active'], ['unknown']] as const)(
    'refuses its identity deleting a critical workload in a namespace whose deletion is %s',
    async (deletion) => {
      expect(await remove(controller, view(deletion))).toMatchObject({ allowed: false, action: 'delete' });
      const approvals = {
        'approval.twokey.dev/bob': await approve(issuer, 'delete', api, { approver: 'bob@example.com' }),
        'approval.twokey.dev/carol': await approve(issuer, 'delete', api, { approver: 'carol@example.com' }),
      };
      expect(await remove(controller, view(deletion), withAnnotations(api, approvals))).toMatchObject({ allowed: true, action: 'delete' });
    },
  );

  it('admits it emptying a namespace whose deletion has begun', async () => {
    expect(await remove(controller, view('deleting'))).toMatchObject({ allowed: true, action: undefined });
  });

  it('keeps the garbage collector exempt wherever a critical namespace stands', async () => {
    for (const deletion of ['active', 'unknown', 'deleting'] as const) {
      expect(await remove(collector, view(deletion)), deletion).toMatchObject({ allowed: true, action: undefined });
    }
  });

  it('judges each name by the role it is listed for', async () => {
    const manager = 'system:kube-controller-manager';
    const asCollector = await makeSnapshot([issuer], makePolicy({ exemptDeleters: { garbageCollector: [manager] } }));
    expect(await remove(manager, view('active'), api, asCollector)).toMatchObject({ allowed: true, action: undefined });
    // The default namespace controller is still its own role there, and only there.
    expect(await remove(controller, view('active'), api, asCollector)).toMatchObject({ allowed: false, action: 'delete' });
    const asController = await makeSnapshot([issuer], makePolicy({ exemptDeleters: { namespaceController: [manager] } }));
    expect(await remove(manager, view('active'), api, asController)).toMatchObject({ allowed: false, action: 'delete' });
    expect(await remove(manager, view('deleting'), api, asController)).toMatchObject({ allowed: true, action: undefined });
  });
});

describe('a critical label that only looks like "true" is called out, and changes nothing', () => {
  const lookAlikes = ['True', 'yes', '1', ' true', 'TRUE', ''];
  const labelled = (value: string, namespace = 'team-a') => deployment({ namespace, labels: { 'twokey.dev/critical': value } });

  it.each(lookAlikes)('warns that %j does not make a Deployment critical, and admits what is not gated', async (value) => {
    const verdict = await decide(request({ operation: 'CREATE', object: labelled(value) }), ctx());
    expect(verdict).toMatchObject({ allowed: true, action: undefined });
    expect(verdict.warnings).toEqual([
      `twokey: label twokey.dev/critical is ${JSON.stringify(value)}, not "true": it does not make this Deployment critical`,
    ]);
  });

  it('warns on every operation, reading the old object of a DELETE, and never changes the verdict', async () => {
    const object = labelled('True');
    const update = await decide(
      request({ operation: 'UPDATE', object: withLabels(object, { team: 'a' }), oldObject: labelled('true') }),
      ctx(),
    );
    // Taking the real label away for a look-alike is an unprotect, and is refused; it is also told.
    expect(update).toMatchObject({ allowed: false, action: 'unprotect' });
    expect(update.warnings[0]).toContain('label twokey.dev/critical is "True", not "true"');
    const removed = await decide(request({ operation: 'DELETE', oldObject: object, user: 'alice@example.com' }), ctx());
    expect(removed).toMatchObject({ allowed: true, action: undefined });
    expect(removed.warnings).toHaveLength(1);
    // In a critical namespace the workload stays gated by its namespace; the label is still told.
    const inCritical = await decide(request({ operation: 'CREATE', object: labelled('yes', 'payments') }), ctx());
    expect(inCritical).toMatchObject({ allowed: false, action: 'deploy' });
    expect(inCritical.warnings).toEqual([
      'twokey: label twokey.dev/critical is "yes", not "true": it does not make this Deployment critical',
    ]);
  });

  it('warns for a Namespace, and not for "true", "false" or no label', async () => {
    const ns = namespaceObject('team-b', { labels: { 'twokey.dev/critical': 'True' } });
    for (const verdict of [
      await decide(request({ operation: 'CREATE', object: ns }), ctx()),
      await decide(request({ operation: 'DELETE', oldObject: ns }), ctx()),
    ]) {
      expect(verdict).toMatchObject({ allowed: true, action: undefined });
      expect(verdict.warnings).toEqual([
        'twokey: label twokey.dev/critical is "True", not "true": it does not make this Namespace critical',
      ]);
    }
    for (const labels of [{ 'twokey.dev/critical': 'false' }, {}] as Record<string, string>[]) {
      const verdict = await decide(request({ operation: 'CREATE', object: deployment({ namespace: 'team-a', labels }) }), ctx());
      expect(verdict.warnings).toEqual([]);
    }
  });
});
