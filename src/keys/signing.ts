/**
 * The change system's side: issuer key pairs and approval tokens. twokey ships these so a change
 * system (or a person trying twokey) can mint approvals that the webhook accepts.
 */
import { randomUUID } from 'node:crypto';
import { CompactSign, calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import {
  APPROVAL_TYPE,
  approvalClaims,
  type Binding,
  BREAK_GLASS_TYPE,
  breakGlassClaims,
  planApprovalClaims,
  type TokenClaimsInput,
} from '../change/claims.ts';
import { TwokeyError } from '../errors.ts';
import { isJsonObject } from '../json.ts';

export const KEYGEN_ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type KeygenAlgorithm = (typeof KEYGEN_ALGORITHMS)[number];

export interface IssuerKeyPair {
  readonly privateJwk: JWK;
  readonly jwks: { keys: JWK[] };
}

export async function generateIssuerKey(alg: KeygenAlgorithm, kid?: string): Promise<IssuerKeyPair> {
  const { privateKey, publicKey } = await generateKeyPair(alg, {
    extractable: true,
  });
  const publicJwk = await exportJWK(publicKey);
  const keyId = kid ?? (await calculateJwkThumbprint(publicJwk));
  const common = { kid: keyId, alg, use: 'sig' };
  return {
    privateJwk: { ...(await exportJWK(privateKey)), ...common },
    jwks: { keys: [{ ...publicJwk, ...common }] },
  };
}

function signingAlgorithm(jwk: JWK): string {
  if (typeof jwk.alg === 'string') return jwk.alg;
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return 'EdDSA';
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return 'ES256';
  throw new TwokeyError('ERR_KEY_INVALID', 'the private key has no alg and is neither Ed25519 nor P-256');
}

/** Validates a private JWK read from a file. */
export function parsePrivateJwk(document: unknown, source: string): JWK {
  if (!isJsonObject(document) || typeof document.kty !== 'string' || typeof document.d !== 'string') {
    throw new TwokeyError('ERR_KEY_INVALID', `${source} is not a private JWK (expected kty and d)`);
  }
  if (typeof document.kid !== 'string' || document.kid === '') {
    throw new TwokeyError('ERR_KEY_INVALID', `${source} has no kid; the webhook finds the verification key by kid`);
  }
  return document as JWK;
}

/** Who signs what token for which cluster, for whom, and for how long: what every token's minting takes. */
export interface SigningRequest {
  readonly privateJwk: JWK;
  readonly issuer: string;
  readonly audience: string;
  readonly approver: string;
  readonly ttlSeconds: number;
  readonly requester?: string;
  /** Seconds since the epoch; defaults to now. */
  readonly now?: number;
}

export interface ApprovalRequest extends SigningRequest {
  readonly change: string;
  readonly binding: Binding;
}

/** An approval of every entry of a plan: one token per approver for the whole change. */
export interface PlanApprovalRequest extends SigningRequest {
  readonly change: string;
  /** The plan's digest (the tree head of its entries, src/plan/entries.ts). */
  readonly plan: string;
  /** How many entries the plan holds. */
  readonly entries: number;
}

/** Signs claims as a JWS of the given `typ` with the private key's own algorithm and kid. */
async function sign(privateJwk: JWK, typ: string, claims: object): Promise<string> {
  const alg = signingAlgorithm(privateJwk);
  const key = await importJWK(privateJwk, alg);
  return new CompactSign(new TextEncoder().encode(JSON.stringify(claims)))
    .setProtectedHeader({ alg, typ, kid: privateJwk.kid as string })
    .sign(key);
}

/** Who signs, for which cluster, for whom and when: issued now (or at `now`), with a fresh jti. */
function tokenInput(request: SigningRequest): TokenClaimsInput {
  return {
    issuer: request.issuer,
    audience: request.audience,
    approver: request.approver,
    issuedAt: Math.floor(request.now ?? Date.now() / 1000),
    ttlSeconds: request.ttlSeconds,
    jti: randomUUID(),
    ...(request.requester !== undefined ? { requester: request.requester } : {}),
  };
}

export async function mintApproval(request: ApprovalRequest): Promise<string> {
  const claims = approvalClaims({ ...tokenInput(request), change: request.change, binding: request.binding });
  return sign(request.privateJwk, APPROVAL_TYPE, claims);
}

export async function mintPlanApproval(request: PlanApprovalRequest): Promise<string> {
  const claims = planApprovalClaims({ ...tokenInput(request), change: request.change, plan: request.plan, entries: request.entries });
  return sign(request.privateJwk, APPROVAL_TYPE, claims);
}

export interface BreakGlassRequest extends SigningRequest {
  readonly incident: string;
  /** Each change the token lets through, and no other. */
  readonly changes: readonly Binding[];
}

/** A break-glass token, signed with the break-glass issuer's key. */
export async function mintBreakGlass(request: BreakGlassRequest): Promise<string> {
  const claims = breakGlassClaims({ ...tokenInput(request), incident: request.incident, changes: request.changes });
  return sign(request.privateJwk, BREAK_GLASS_TYPE, claims);
}
