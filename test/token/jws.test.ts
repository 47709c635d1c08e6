/**
 * Reading an annotation value as a JWS: once, syntax only, a typed rejection for what is not one.
 */
import { describe, expect, it } from 'vitest';
import { parseToken } from '../../src/token/jws.ts';
import { b64url, reencodedSignature } from '../support/tokens.ts';

const header = b64url(JSON.stringify({ alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'k1' }));
const payload = b64url(JSON.stringify({ iss: 'https://change.example.com', sub: 'bob' }));
const token = `${header}.${payload}.${b64url(Buffer.alloc(64, 7))}`;

describe('parseToken', () => {
  it('reads a compact JWS once and decodes its header and payload when asked', () => {
    const parsed = parseToken(token, 8192);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed).toMatchObject({
      serialization: 'compact',
      text: token,
      identity: token,
      canonical: true,
      payloadSegment: payload,
    });
    const [signature] = parsed.signatures;
    expect(signature.protectedHeader).toBe(header);
    expect(signature.header()).toEqual({ ok: true, value: { alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'k1' } });
    expect(signature.header()).toBe(signature.header());
    expect(parsed.payload()).toMatchObject({ ok: true, value: { sub: 'bob' } });
  });

  it('gives copies written otherwise one identity, and marks them not canonical', () => {
    for (const copy of [` ${token}\n`, reencodedSignature(token)]) {
      const parsed = parseToken(copy, 8192);
      expect(parsed.ok && parsed.identity).toBe(token);
      expect(parsed.ok && parsed.canonical).toBe(false);
    }
  });

  it('leaves a token without a signature to the header checks, with no identity', () => {
    const parsed = parseToken(`${header}.${payload}.`, 8192);
    expect(parsed.ok && parsed.identity).toBeUndefined();
  });

  it.each([
    ['x'.repeat(300), 256, 'too-large', 'token is larger than 256 bytes'],
    [`${header}.${payload}`, 8192, 'malformed', 'has 2 segments, a compact JWS has 3'],
    [`${header}.${payload}=.sig`, 8192, 'malformed', 'is not base64url-encoded compact JWS'],
  ])('rejects %#: %s', (value, max, code, detail) => {
    expect(parseToken(value, max)).toEqual({ ok: false, code, detail });
  });

  it('rejects a header or payload that is not an I-JSON object, when it is decoded', () => {
    const parsed = parseToken(`${b64url('{"a":1,"a":2}')}.${b64url('[]')}.${b64url('s')}`, 8192);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed.signatures[0].header()).toMatchObject({ ok: false, code: 'not-ijson' });
    expect(parsed.payload()).toEqual({ ok: false, code: 'malformed', detail: 'payload is not a JSON object' });
  });
});

describe('parseToken, JSON General serialization', () => {
  const second = b64url(JSON.stringify({ alg: 'EdDSA', typ: 'twokey-countersignature+jws', kid: 'bob-1' }));
  const signature = b64url(Buffer.alloc(64, 7));
  const general = JSON.stringify({
    payload,
    signatures: [
      { protected: header, signature },
      { protected: second, signature },
    ],
  });

  it('reads one payload and its signatures, and names the whole value as the token', () => {
    const parsed = parseToken(`\n${general}\n`, 8192);
    if (!parsed.ok) throw new Error(parsed.detail);
    expect(parsed).toMatchObject({ serialization: 'general', text: general, identity: general, canonical: true, payloadSegment: payload });
    expect(parsed.signatures.map((s) => s.protectedHeader)).toEqual([header, second]);
    expect(parsed.signatures[1]?.header()).toMatchObject({ ok: true, value: { typ: 'twokey-countersignature+jws' } });
  });

  it.each([
    ['an unprotected header', { payload, signatures: [{ protected: header, signature, header: { kid: 'x' } }] }, 'malformed'],
    ['the flattened form', { payload, protected: header, signature }, 'malformed'],
    ['three signatures', { payload, signatures: [1, 2, 3].map(() => ({ protected: header, signature })) }, 'malformed'],
    ['no signature', { payload, signatures: [] }, 'malformed'],
    ['a payload that is not base64url', { payload: 'a+b', signatures: [{ protected: header, signature }] }, 'malformed'],
  ])('rejects %s', (_what, document, code) => {
    expect(parseToken(JSON.stringify(document), 8192)).toMatchObject({ ok: false, code });
  });

  it('rejects duplicate members (I-JSON) and values over the size limit', () => {
    const duplicate = `{"payload":"${payload}","payload":"${payload}","signatures":[{"protected":"${header}","signature":"${signature}"}]}`;
    expect(parseToken(duplicate, 8192)).toMatchObject({ ok: false, code: 'not-ijson' });
    expect(parseToken(general, 256)).toMatchObject({ ok: false, code: 'too-large' });
  });

  it('gives a copy written with other whitespace one identity, not canonical', () => {
    const spaced = JSON.stringify(JSON.parse(general), null, 2);
    const parsed = parseToken(spaced, 8192);
    expect(parsed).toMatchObject({ ok: true, identity: general, canonical: false, text: spaced });
  });
});
