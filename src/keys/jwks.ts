/**
 * Issuer key sets: a JWKS document turned into verification keys, imported once at load so
 * that answering a review never parses or imports a key.
 */
import { type CryptoKey, calculateJwkThumbprint, importJWK, type JWK } from 'jose';
import { TwokeyError } from '../errors.ts';
import { isJsonObject } from '../json.ts';
import { VerifiedTokens } from './verified.ts';

export interface TrustedKey {
  readonly issuer: string;
  readonly kid: string;
  /** The key imported once per JWS algorithm it may verify. */
  readonly byAlgorithm: ReadonlyMap<string, CryptoKey>;
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
 * Parses and imports an issuer's JWKS. Throws ERR_JWKS_INVALID when the document is malformed (the
 * last good set then stays in force). A well-formed set without a usable key is the issuer's word
 * that it trusts none: it is returned empty, so that emptying a JWKS revokes its keys.
 */
export async function importJwks(issuer: string, document: unknown, source: string): Promise<IssuerKeySet> {
  const invalid = (why: string) => new TwokeyError('ERR_JWKS_INVALID', `JWKS ${source} for issuer ${issuer}: ${why}`);
  if (!isJsonObject(document) || !Array.isArray(document.keys)) throw invalid('not a JWKS (expected {"keys": [...]})');

  const keys = new Map<string, TrustedKey>();
  const thumbprints = new Set<string>();
  const skipped: string[] = [];
  for (const [index, entry] of document.keys.entries()) {
    if (!isJsonObject(entry)) throw invalid(`keys[${index}] is not an object`);
    const jwk = entry as JWK;
    const label = typeof jwk.kid === 'string' ? `key ${JSON.stringify(jwk.kid)}` : `keys[${index}]`;
    if (PRIVATE_MEMBERS.some((member) => member in entry)) {
      throw invalid(`${label} holds private or secret key material; publish only public keys`);
    }
    if (typeof jwk.kid !== 'string' || jwk.kid === '') {
      skipped.push(`${label}: no kid (approvals name their key by kid)`);
      continue;
    }
    if (keys.has(jwk.kid)) throw invalid(`kid ${JSON.stringify(jwk.kid)} appears twice`);
    if (jwk.use !== undefined && jwk.use !== 'sig') {
      skipped.push(`${label}: use is ${JSON.stringify(jwk.use)}, not "sig"`);
      continue;
    }
    if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.includes('verify'))) {
      skipped.push(`${label}: key_ops does not include "verify"`);
      continue;
    }
    const candidates = algorithmsFor(jwk).filter((alg) => jwk.alg === undefined || jwk.alg === alg);
    if (candidates.length === 0) {
      skipped.push(
        `${label}: unsupported key type ${String(jwk.kty)}${jwk.crv ? `/${jwk.crv}` : ''}${jwk.alg ? ` for alg ${jwk.alg}` : ''}`,
      );
      continue;
    }
    const byAlgorithm = new Map<string, CryptoKey>();
    for (const alg of candidates) {
      try {
        const key = await importJWK({ ...jwk, ext: false }, alg);
        if (key instanceof Uint8Array) throw new Error('symmetric key');
        byAlgorithm.set(alg, key);
      } catch (error) {
        skipped.push(`${label}: cannot be imported for ${alg} (${(error as Error).message})`);
      }
    }
    if (byAlgorithm.size > 0) {
      keys.set(jwk.kid, { issuer, kid: jwk.kid, byAlgorithm });
      thumbprints.add(await calculateJwkThumbprint(jwk));
    }
  }
  return { issuer, keys, skipped, fingerprint: JSON.stringify(document.keys), thumbprints };
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

  constructor(sets: Iterable<IssuerKeySet>) {
    this.#issuers = new Map([...sets].map((set) => [set.issuer, set]));
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
