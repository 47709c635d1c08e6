/**
 * Issuer key sets: a JWKS document turned into verification keys, imported once at load so
 * that answering a review never parses or imports a key.
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';
import { type CryptoKey, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { TwokeyError } from '../errors.ts';
import { isJsonObject } from '../json.ts';
import type { ApproverKeys } from './approvers.ts';
import { VerifiedTokens } from './verified.ts';

export interface TrustedKey {
  readonly issuer: string;
  readonly kid: string;
  /** The key imported once per JWS algorithm it may verify. */
  readonly byAlgorithm: ReadonlyMap<string, CryptoKey>;
  /** Its RFC 7638 thumbprint: the same key under any kid. */
  readonly thumbprint: string;
}

export interface IssuerKeySet {
  readonly issuer: string;
  readonly keys: ReadonlyMap<string, TrustedKey>;
  /** Keys present in the document but unusable for approvals, with the reason. */
  readonly skipped: readonly string[];
  /** The keys as published, to tell a refresh that changed nothing. */
  readonly fingerprint: string;
  /** The RFC 7638 thumbprint of each usable key: the key itself, whatever its kid. */
  readonly thumbprints: ReadonlySet<string>;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'] as const;

/** The JWS algorithms a public JWK can verify, by key type and curve. */
function algorithmsFor(jwk: JWK): string[] {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ['EdDSA', 'Ed25519'];
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return ['ES256'];
  if (jwk.kty === 'EC' && jwk.crv === 'P-384') return ['ES384'];
  if (jwk.kty === 'EC' && jwk.crv === 'P-521') return ['ES512'];
  if (jwk.kty === 'RSA') return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  return [];
}

/**
 * Why an RSA key cannot be trusted, if it cannot: with a small public exponent (e = 1 makes every
 * message its own signature) or a short modulus, signatures can be forged. NIST SP 800-56B asks for
 * an odd e of at least 65537, and twokey for a modulus of at least 2048 bits, as jose does.
 */
function weakRsa(entry: JWK): string | undefined {
  if (typeof entry.n !== 'string' || typeof entry.e !== 'string') return 'an RSA key needs n and e';
  const e = BigInt(`0x${Buffer.from(entry.e, 'base64url').toString('hex') || '0'}`);
  if (e < 65537n || e % 2n === 0n) return `its RSA public exponent ${e} is not an odd number of at least 65537`;
  const hex = Buffer.from(entry.n, 'base64url').toString('hex');
  const bits = hex === '' ? 0 : BigInt(`0x${hex}`).toString(2).length;
  if (bits < 2048) return `its RSA modulus has ${bits} bits, fewer than 2048`;
  return undefined;
}

/** A JWKS entry checked as a public signing key: why it is unusable (skipped), or the algorithms to import it for. */
function usableFor(entry: JWK, label: string, skipped: string[]): string[] {
  if (entry.use !== undefined && entry.use !== 'sig') {
    skipped.push(`${label}: use is ${JSON.stringify(entry.use)}, not "sig"`);
    return [];
  }
  if (entry.key_ops !== undefined && !(Array.isArray(entry.key_ops) && entry.key_ops.includes('verify'))) {
    skipped.push(`${label}: key_ops does not include "verify"`);
    return [];
  }
  if (entry.kty === 'RSA') {
    const weak = weakRsa(entry);
    if (weak) {
      skipped.push(`${label}: ${weak}`);
      return [];
    }
  }
  const candidates = algorithmsFor(entry).filter((alg) => entry.alg === undefined || entry.alg === alg);
  if (candidates.length === 0) {
    skipped.push(
      `${label}: unsupported key type ${String(entry.kty)}${entry.crv ? `/${entry.crv}` : ''}${entry.alg ? ` for alg ${entry.alg}` : ''}`,
    );
  }
  return candidates;
}

/**
 * The RFC 7638 thumbprint of the key itself, not of how the JWK spells it: one key can be written
 * several ways (other unused bits in the last base64url character, leading zero octets in an RSA
 * modulus), and every "one key, one party" rule compares thumbprints. So the thumbprint is taken
 * of the key as read back from its key material, in the one spelling Node writes.
 */
export async function keyThumbprint(jwk: JWK): Promise<string> {
  // Only the members that make the public key: what else a JWK carries is not the key.
  const members = Object.fromEntries(
    (['kty', 'crv', 'x', 'y', 'n', 'e'] as const).flatMap((m) => (jwk[m] === undefined ? [] : [[m, jwk[m]]])),
  );
  const read = createPublicKey({ key: members as JsonWebKey, format: 'jwk' });
  return calculateJwkThumbprint(read.export({ format: 'jwk' }) as JWK);
}

/** A JWKS document's keys as verification keys by kid: public only, a kid each, no kid twice. */
export async function importKeys(
  document: unknown,
  invalid: (why: string) => Error,
): Promise<{ keys: Map<string, { kid: string; byAlgorithm: Map<string, CryptoKey>; thumbprint: string }>; skipped: string[] }> {
  if (!isJsonObject(document) || !Array.isArray(document.keys)) throw invalid('not a JWKS (expected {"keys": [...]})');
  const keys = new Map<string, { kid: string; byAlgorithm: Map<string, CryptoKey>; thumbprint: string }>();
  const skipped: string[] = [];
  for (const [index, entry] of document.keys.entries()) {
    if (!isJsonObject(entry)) throw invalid(`keys[${index}] is not an object`);
    const jwk = entry as JWK;
    const label = typeof jwk.kid === 'string' ? `key ${JSON.stringify(jwk.kid)}` : `keys[${index}]`;
    if (PRIVATE_MEMBERS.some((member) => member in entry)) {
      throw invalid(`${label} holds private or secret key material; publish only public keys`);
    }
    if (typeof jwk.kid !== 'string' || jwk.kid === '') {
      skipped.push(`${label}: no kid (signatures name their key by kid)`);
      continue;
    }
    if (keys.has(jwk.kid)) throw invalid(`kid ${JSON.stringify(jwk.kid)} appears twice`);
    const byAlgorithm = new Map<string, CryptoKey>();
    for (const alg of usableFor(jwk, label, skipped)) {
      try {
        const key = await importJWK({ ...jwk, ext: false }, alg);
        if (key instanceof Uint8Array) throw new Error('symmetric key');
        byAlgorithm.set(alg, key);
      } catch (error) {
        skipped.push(`${label}: cannot be imported for ${alg} (${(error as Error).message})`);
      }
    }
    if (byAlgorithm.size === 0) continue;
    let thumbprint: string;
    try {
      thumbprint = await keyThumbprint(jwk);
    } catch (error) {
      skipped.push(`${label}: cannot be read as a public key (${(error as Error).message})`);
      continue;
    }
    keys.set(jwk.kid, { kid: jwk.kid, byAlgorithm, thumbprint });
  }
  return { keys, skipped };
}

/**
 * Parses and imports an issuer's JWKS. Throws ERR_JWKS_INVALID when the document is malformed (the
 * last good set then stays in force). A well-formed set without a usable key is the issuer's word
 * that it trusts none: it is returned empty, so that emptying a JWKS revokes its keys.
 */
export async function importJwks(issuer: string, document: unknown, source: string): Promise<IssuerKeySet> {
  const invalid = (why: string) => new TwokeyError('ERR_JWKS_INVALID', `JWKS ${source} for issuer ${issuer}: ${why}`);
  const imported = await importKeys(document, invalid);
  const keys = new Map([...imported.keys].map(([kid, key]) => [kid, { issuer, ...key }]));
  return {
    issuer,
    keys,
    skipped: imported.skipped,
    fingerprint: JSON.stringify((document as { keys: unknown }).keys),
    thumbprints: new Set([...keys.values()].map((key) => key.thumbprint)),
  };
}

/**
 * Refuses a break-glass key set that shares a key with an ordinary issuer's: with it, an ordinary
 * change system could sign break-glass tokens, or break-glass tokens pass for its approvals.
 */
export function refuseSharedKeys(breakGlass: IssuerKeySet | undefined, ordinary: readonly IssuerKeySet[]): void {
  if (breakGlass === undefined) return;
  const shared = ordinary.find((set) => [...set.thumbprints].some((thumbprint) => breakGlass.thumbprints.has(thumbprint)));
  if (shared) {
    throw new TwokeyError(
      'ERR_JWKS_INVALID',
      `the break-glass issuer ${JSON.stringify(breakGlass.issuer)} shares a key with issuer ${JSON.stringify(shared.issuer)}; break-glass needs keys of its own`,
    );
  }
}

/** All trusted issuers' keys, as one immutable snapshot. */
export class KeyRing {
  readonly #issuers: ReadonlyMap<string, IssuerKeySet>;
  /** Tokens these keys have verified; a new key ring starts empty. */
  readonly verified = new VerifiedTokens();
  /** The approvers' registered keys, for countersignatures (undefined: the policy has no registry). */
  readonly approvers: ApproverKeys | undefined;

  constructor(sets: Iterable<IssuerKeySet>, approvers?: ApproverKeys) {
    this.#issuers = new Map([...sets].map((set) => [set.issuer, set]));
    this.approvers = approvers;
  }

  has(issuer: string): boolean {
    return this.#issuers.has(issuer);
  }

  /** Usable keys of a trusted issuer (0 when its JWKS withdrew them all). */
  keyCount(issuer: string): number {
    return this.#issuers.get(issuer)?.keys.size ?? 0;
  }

  find(issuer: string, kid: string): TrustedKey | undefined {
    return this.#issuers.get(issuer)?.keys.get(kid);
  }

  get issuers(): string[] {
    return [...this.#issuers.keys()];
  }
}
