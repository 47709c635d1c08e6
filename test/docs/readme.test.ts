/**
 * The README's countersignature test vector: it verifies with the code, signature by signature,
 * and `countersign` makes exactly it from the keys and the token the README gives.
 */
import { readFileSync } from 'node:fs';
import { flattenedVerify, importJWK, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { countersign, localSigner } from '../../src/keys/signing.ts';
import { parseToken } from '../../src/token/jws.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('**Test vector**'), readme.indexOf('### Approver groups'));
const blocks = [...section.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => (m[1] ?? '').trim());
const [keysBlock = '', claimsBlock = '', expected = ''] = blocks;
const [issuerKey, approverKey] = keysBlock.split('\n').map((line) => JSON.parse(line) as JWK) as [JWK, JWK];
const publicOf = ({ d: _d, ...jwk }: JWK) => jwk;

describe("the README's countersignature test vector", () => {
  it('verifies: the change system signed the claims, the approver countersigned them', async () => {
    const general = JSON.parse(expected) as { payload: string; signatures: { protected: string; signature: string }[] };
    expect(Buffer.from(general.payload, 'base64url').toString()).toBe(claimsBlock);
    const [first, second] = general.signatures;
    if (!first || !second) throw new Error('two signatures expected');
    const issued = await flattenedVerify({ payload: general.payload, ...first }, await importJWK(publicOf(issuerKey), 'EdDSA'));
    expect(issued.protectedHeader).toEqual({ alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'change-1' });
    const counter = await flattenedVerify({ payload: general.payload, ...second }, await importJWK(publicOf(approverKey), 'EdDSA'));
    expect(counter.protectedHeader).toEqual({ alg: 'EdDSA', typ: 'twokey-countersignature+jws', kid: 'bob-1' });
    await expect(flattenedVerify({ payload: general.payload, ...second }, await importJWK(publicOf(issuerKey), 'EdDSA'))).rejects.toThrow();
  });

  it('is what countersign makes of the token the change system issued', async () => {
    const general = JSON.parse(expected) as { payload: string; signatures: { protected: string; signature: string }[] };
    const [first] = general.signatures;
    const token = parseToken(`${first?.protected}.${general.payload}.${first?.signature}`, 8192);
    if (!token.ok) throw new Error(token.detail);
    expect((await countersign(token, localSigner(approverKey))).json).toBe(expected);
  });
});
