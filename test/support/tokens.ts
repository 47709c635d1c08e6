/**
 * Hand-made tokens for hostile tests: any header and payload bytes, signed with the issuer's
 * real key (so that only the rule under test can reject them), with HMAC, or not at all.
 */
import { createHmac, createPrivateKey, randomUUID, sign } from 'node:crypto';
import type { JWK } from 'jose';
import type { Binding } from '../../src/change/claims.ts';
import { CLUSTER, type Issuer, NOW } from './world.ts';

export const b64url = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The same bytes written with other unused bits in the segment's last character, or undefined
 * when its length leaves none (a multiple of 4).
 */
export function otherUnusedBits(segment: string): string | undefined {
  const unused = segment.length % 4 === 2 ? 0xf : segment.length % 4 === 3 ? 0x3 : 0;
  const index = BASE64URL.indexOf(segment.at(-1) as string);
  return unused ? `${segment.slice(0, -1)}${BASE64URL[(index & ~unused) | ((index + 1) & unused)]}` : undefined;
}

/** The token with its signature re-encoded (the last character of a 64-byte signature has 4 unused bits). */
export function reencodedSignature(token: string): string {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  return `${header}.${payload}.${otherUnusedBits(signature)}`;
}

export interface RawTokenOptions {
  /** Header object, or exact header bytes. */
  header?: Record<string, unknown> | string | Uint8Array;
  /** Payload object, or exact payload bytes. */
  payload: Record<string, unknown> | string | Uint8Array;
  signWith?: { kind: 'issuer'; issuer: Issuer } | { kind: 'hmac'; secret: string | Uint8Array } | { kind: 'none' };
}

function bytes(value: Record<string, unknown> | string | Uint8Array): Uint8Array {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return value;
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function rawToken(issuer: Issuer, options: RawTokenOptions): string {
  const header = options.header ?? { alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: issuer.privateJwk.kid };
  const signingInput = `${b64url(bytes(header))}.${b64url(bytes(options.payload))}`;
  const signer = options.signWith ?? { kind: 'issuer', issuer };
  let signature: Buffer;
  if (signer.kind === 'none') signature = Buffer.alloc(0);
  else if (signer.kind === 'hmac') signature = createHmac('sha256', signer.secret).update(signingInput).digest();
  else {
    const key = createPrivateKey({ key: signer.issuer.privateJwk as JWK & { kty: string }, format: 'jwk' });
    signature = sign(key.asymmetricKeyType === 'ed25519' ? null : 'sha256', Buffer.from(signingInput), {
      key,
      ...(key.asymmetricKeyType === 'ec' ? { dsaEncoding: 'ieee-p1363' as const } : {}),
    });
  }
  return `${signingInput}.${b64url(signature)}`;
}

/** A valid claims set for a binding; tests override single claims. */
export function claims(issuer: Issuer, binding: Binding, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: issuer.issuer,
    aud: CLUSTER,
    sub: 'carol@example.com',
    iat: NOW - 60,
    exp: NOW + 3600,
    jti: randomUUID(),
    twokey: { change: 'CHG0031337', ...binding },
    ...overrides,
  };
}
