/**
 * One key, several spellings. A JWK coordinate of 32 bytes is 43 base64url characters, whose last
 * carries 2 unused bits; an RSA modulus can carry leading zero octets. Each spelling imports as the
 * same public key but hashes to another RFC 7638 thumbprint, and every "one key, one party" rule
 * compares thumbprints: one key for two approvers, an issuer's key registered for an approver, a
 * break-glass key shared with an ordinary issuer, two countersignatures by one key.
 */
import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertNoSharedKeys, loadApproverKeys } from '../../src/keys/approvers.ts';
import { importJwks, keyThumbprint, refuseSharedKeys } from '../../src/keys/jwks.ts';
import { type Approver, BREAK_GLASS_ISSUER, type Issuer, makeApprover, makeIssuer, makePolicy, registryEntry } from '../support/world.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The same public JWK, its `x` ending in a character whose unused bits differ (`bit` 1 or 2). */
function respelled(jwk: JWK, kid: string, bit = 1): JWK {
  const x = jwk.x as string;
  return { ...jwk, kid, x: x.slice(0, -1) + ALPHABET[ALPHABET.indexOf(x.at(-1) as string) ^ bit] };
}

let issuer: Issuer;
let bob: Approver;

beforeAll(async () => {
  issuer = await makeIssuer();
  bob = await makeApprover('bob@example.com');
});

describe('a key is known by its key material, however its JWK spells it', () => {
  it('gives every spelling the thumbprint of the canonical one', async () => {
    const key = bob.jwks.keys[0] as JWK;
    const canonical = await calculateJwkThumbprint(key);
    expect(await keyThumbprint(key)).toBe(canonical);
    expect(await calculateJwkThumbprint(respelled(key, 'k'))).not.toBe(canonical);
    expect(await keyThumbprint(respelled(key, 'k', 1))).toBe(canonical);
    expect(await keyThumbprint(respelled(key, 'k', 2))).toBe(canonical);

    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }) as JWK;
    const padded = { ...rsa, n: Buffer.concat([Buffer.alloc(1), Buffer.from(rsa.n as string, 'base64url')]).toString('base64url') };
    expect(await calculateJwkThumbprint(padded)).not.toBe(await calculateJwkThumbprint(rsa));
    expect(await keyThumbprint(padded)).toBe(await calculateJwkThumbprint(rsa));
  });

  it('refuses at load one key registered for two approvers, spelled two ways', async () => {
    const policy = makePolicy({
      approvers: [registryEntry(bob), { identity: 'mallory@example.com', jwks: { keys: [respelled(bob.jwks.keys[0] as JWK, 'm-1')] } }],
    });
    await expect(loadApproverKeys(policy)).rejects.toThrow(/one key is registered for "bob@example.com" .* and for "mallory@example.com"/);
  });

  it("refuses at load the change system's key registered for an approver under another spelling", async () => {
    const policy = makePolicy({
      approvers: [{ identity: 'mallory@example.com', jwks: { keys: [respelled(issuer.jwks.keys[0] as JWK, 'm-1')] } }],
    });
    const registry = await loadApproverKeys(policy);
    expect(() => assertNoSharedKeys(registry, [importedIssuer])).toThrow(/is also registered for approver/);
  });

  it("refuses a break-glass key set holding an ordinary issuer's key under another spelling", async () => {
    const glass = await importJwks(BREAK_GLASS_ISSUER, { keys: [respelled(issuer.jwks.keys[0] as JWK, 'glass-1')] }, 'test');
    expect(() => refuseSharedKeys(glass, [importedIssuer])).toThrow(/shares a key/);
  });
});

let importedIssuer: Awaited<ReturnType<typeof importJwks>>;
beforeAll(async () => {
  importedIssuer = await importJwks(issuer.issuer, issuer.jwks, 'test');
});
