/**
 * The approvers' own keys, from the policy's approvers registry: imported once at policy load so
 * that a countersignature is checked without parsing a key. Refused at load: one key registered
 * for two approvers (it could not tell them apart), a kid twice for one approver, and an approver
 * key that is also a change system's key (one party could then sign both halves of an approval) or
 * the break-glass issuer's.
 */
import { readFile } from 'node:fs/promises';
import type { CryptoKey } from 'jose';
import { TwokeyError } from '../errors.ts';
import type { Identity } from '../identity.ts';
import type { ApproverPolicy } from '../policy/approvers.ts';
import type { Policy } from '../policy/policy.ts';
import { type IssuerKeySet, importKeys } from './jwks.ts';

export interface ApproverKey {
  readonly identity: Identity;
  readonly kid: string;
  readonly byAlgorithm: ReadonlyMap<string, CryptoKey>;
  readonly thumbprint: string;
}

export class ApproverKeys {
  readonly #byIdentity: ReadonlyMap<Identity, ReadonlyMap<string, ApproverKey>>;
  readonly #byThumbprint: ReadonlyMap<string, ApproverKey>;

  constructor(keys: readonly ApproverKey[]) {
    const byIdentity = new Map<Identity, Map<string, ApproverKey>>();
    for (const key of keys) byIdentity.set(key.identity, (byIdentity.get(key.identity) ?? new Map()).set(key.kid, key));
    this.#byIdentity = byIdentity;
    this.#byThumbprint = new Map(keys.map((key) => [key.thumbprint, key]));
  }

  /** The key `kid` registered for `identity`. */
  find(identity: Identity, kid: string): ApproverKey | undefined {
    return this.#byIdentity.get(identity)?.get(kid);
  }

  /** Whether `identity` has keys in the registry. */
  has(identity: Identity): boolean {
    return this.#byIdentity.has(identity);
  }

  /** The approvers who registered a key under `kid` (to say whose key a countersignature used). */
  holdersOf(kid: string): Identity[] {
    return [...this.#byIdentity].filter(([, keys]) => keys.has(kid)).map(([identity]) => identity);
  }

  /** The registered key with this thumbprint, if any. */
  byThumbprint(thumbprint: string): ApproverKey | undefined {
    return this.#byThumbprint.get(thumbprint);
  }
}

const invalid = (why: string) => new TwokeyError('ERR_POLICY_INVALID', `approvers registry: ${why}`);

async function jwksOf(approver: ApproverPolicy): Promise<unknown> {
  if (approver.keys.kind === 'inline') return approver.keys.jwks;
  const { path } = approver.keys;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw invalid(`cannot read the JWKS ${path} of ${JSON.stringify(approver.identity)}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw invalid(`the JWKS ${path} of ${JSON.stringify(approver.identity)} is not JSON`);
  }
}

/** Imports every approver's keys; throws ERR_POLICY_INVALID when the registry cannot be trusted as written. */
export async function loadApproverKeys(policy: Policy): Promise<ApproverKeys | undefined> {
  if (policy.approvers === undefined) return undefined;
  const all: ApproverKey[] = [];
  for (const approver of policy.approvers) {
    const source = approver.keys.kind === 'file' ? approver.keys.path : 'the policy';
    const { keys } = await importKeys(await jwksOf(approver), (why) =>
      invalid(`JWKS of ${JSON.stringify(approver.identity)} (${source}): ${why}`),
    );
    for (const key of keys.values()) {
      const other = all.find((k) => k.thumbprint === key.thumbprint);
      if (other !== undefined) {
        throw invalid(
          other.identity === approver.identity
            ? `${JSON.stringify(approver.identity)} registers one key twice (kids ${JSON.stringify(other.kid)} and ${JSON.stringify(key.kid)})`
            : `one key is registered for ${JSON.stringify(other.identity)} (kid ${JSON.stringify(other.kid)}) and for ${JSON.stringify(approver.identity)} (kid ${JSON.stringify(key.kid)}); a key names one person`,
        );
      }
      all.push({ identity: approver.identity, ...key });
    }
  }
  return new ApproverKeys(all);
}

/**
 * Throws when an issuer's key set (a change system's, or the break-glass issuer's) holds a key
 * registered for an approver: one party would sign both halves of an approval, or an approver's
 * key would let a change through alone as break-glass.
 */
export function assertNoSharedKeys(approvers: ApproverKeys | undefined, sets: Iterable<IssuerKeySet>): void {
  if (approvers === undefined) return;
  for (const set of sets) {
    for (const key of set.keys.values()) {
      const shared = approvers.byThumbprint(key.thumbprint);
      if (shared !== undefined) {
        throw new TwokeyError(
          'ERR_POLICY_INVALID',
          `key ${JSON.stringify(key.kid)} of issuer ${set.issuer} is also registered for approver ${JSON.stringify(shared.identity)} (kid ${JSON.stringify(shared.kid)}); an approval's two signatures must come from two parties`,
        );
      }
    }
  }
}
