/**
 * The signing side: issuer and approver key pairs, approval tokens and countersignatures. twokey
 * ships these so a change system, an approver (or a person trying twokey) can make what the
 * webhook accepts. Signing goes through a JwsSigner, so the private key may live elsewhere (an
 * HSM, a KMS, an agent: cli/signer.ts runs an external command).
 */
import { constants, createPrivateKey, randomUUID, sign as signBytes } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, flattenedVerify, generateKeyPair, importJWK, type JWK } from 'jose';
import {
  APPROVAL_TYPE,
  type ApprovalClaimsInput,
  approvalClaims,
  type Binding,
  BREAK_GLASS_TYPE,
  breakGlassClaims,
  COUNTERSIGNATURE_TYPE,
  type PlanApprovalClaimsInput,
  planApprovalClaims,
  type TokenClaimsInput,
} from '../change/claims.ts';
import { TwokeyError } from '../errors.ts';
import { isJsonObject } from '../json.ts';
import { generalJson, type ParsedToken } from '../token/jws.ts';

/** Signs a JWS signing input, `BASE64URL(header).BASE64URL(payload)`, with the key `kid` for `alg`. */
export interface JwsSigner {
  readonly alg: string;
  readonly kid: string;
  sign(signingInput: string): Promise<Uint8Array>;
}

const HASH: Record<string, string> = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

/** A signer holding a private JWK in this process. */
export function localSigner(privateJwk: JWK): JwsSigner {
  const alg = signingAlgorithm(privateJwk);
  const key = createPrivateKey({ key: privateJwk as JWK & { kty: string }, format: 'jwk' });
  const bits = /(\d+)$/.exec(alg)?.[1] ?? '';
  return {
    alg,
    kid: privateJwk.kid as string,
    sign: async (input) => {
      const data = Buffer.from(input, 'ascii');
      if (alg === 'EdDSA' || alg === 'Ed25519') return signBytes(null, data, key);
      if (alg.startsWith('ES')) return signBytes(HASH[bits] ?? null, data, { key, dsaEncoding: 'ieee-p1363' });
      if (alg.startsWith('PS'))
        return signBytes(HASH[bits] ?? null, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(bits) / 8 });
      return signBytes(HASH[bits] ?? null, data, key);
    },
  };
}

/** A base64url JSON segment. */
const segment = (value: unknown) => Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');

/** Signs `header` over the payload segment with `signer`: the protected header and signature segments. */
async function signSegment(payloadSegment: string, header: Record<string, unknown>, signer: JwsSigner) {
  const protectedHeader = segment({ alg: signer.alg, ...header, kid: signer.kid });
  const signature = Buffer.from(await signer.sign(`${protectedHeader}.${payloadSegment}`)).toString('base64url');
  return { protectedHeader, signature };
}

/**
 * Checks a signature a signer made against the public key it is meant to come from, so that a
 * signer that answers garbage (or signs with another key) never makes a token that would not count.
 */
export async function assertVerifies(publicJwk: JWK, alg: string, protectedHeader: string, payloadSegment: string, signature: string) {
  try {
    await flattenedVerify({ protected: protectedHeader, payload: payloadSegment, signature }, await importJWK(publicJwk, alg), {
      algorithms: [alg],
    });
  } catch {
    throw new TwokeyError('ERR_KEY_INVALID', `the signature does not verify with the public key ${JSON.stringify(publicJwk.kid ?? '')}`);
  }
}

export const KEYGEN_ALGORITHMS = ['EdDSA', 'ES256'] as const;
export type KeygenAlgorithm = (typeof KEYGEN_ALGORITHMS)[number];

export interface IssuerKeyPair {
  readonly privateJwk: JWK;
  readonly jwks: { keys: JWK[] };
}

/** A key pair: an issuer's (change system's), or an approver's for countersigning; the same kinds of key. */
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
  /** The issuer's private key, or a `signer` that holds it. */
  readonly privateJwk?: JWK;
  readonly signer?: JwsSigner;
  readonly issuer: string;
  readonly audience: string;
  readonly approver: string;
  readonly ttlSeconds: number;
  readonly requester?: string;
  /** Seconds since the epoch; defaults to now. */
  readonly now?: number;
}

/** An approval of one object: the change id and its binding. */
export type ApprovalRequest = SigningRequest & Pick<ApprovalClaimsInput, 'change' | 'binding'>;

/** An approval of every entry of a plan (its digest and size): one token per approver for the whole change. */
export type PlanApprovalRequest = SigningRequest & Pick<PlanApprovalClaimsInput, 'change' | 'plan' | 'entries'>;

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

/** The signer a request names, or a local one over its private key. */
function signerOf(request: SigningRequest): JwsSigner {
  if (request.signer !== undefined) return request.signer;
  if (request.privateJwk !== undefined) return localSigner(request.privateJwk);
  throw new TwokeyError('ERR_KEY_INVALID', 'a token needs a private key or a signer');
}

/** Signs claims as a compact JWS of the given `typ` with the request's signer (its algorithm and kid). */
async function sign(request: SigningRequest, typ: string, claims: object): Promise<string> {
  const payloadSegment = segment(claims);
  const { protectedHeader, signature } = await signSegment(payloadSegment, { typ }, signerOf(request));
  return `${protectedHeader}.${payloadSegment}.${signature}`;
}

export async function mintApproval(request: ApprovalRequest): Promise<string> {
  const claims = approvalClaims({ ...tokenInput(request), change: request.change, binding: request.binding });
  return sign(request, APPROVAL_TYPE, claims);
}

export async function mintPlanApproval(request: PlanApprovalRequest): Promise<string> {
  const claims = planApprovalClaims({ ...tokenInput(request), change: request.change, plan: request.plan, entries: request.entries });
  return sign(request, APPROVAL_TYPE, claims);
}

export interface BreakGlassRequest extends SigningRequest {
  readonly incident: string;
  /** Each change the token lets through, and no other. */
  readonly changes: readonly Binding[];
}

/** A break-glass token, signed with the break-glass issuer's key (or a signer that holds it). */
export async function mintBreakGlass(request: BreakGlassRequest): Promise<string> {
  const claims = breakGlassClaims({ ...tokenInput(request), incident: request.incident, changes: request.changes });
  return sign(request, BREAK_GLASS_TYPE, claims);
}

/**
 * An approver's countersignature of a token the change system issued: the same payload signed
 * again with the approver's key under typ twokey-countersignature+jws, written as the JWS JSON
 * General serialization with the change system's signature first. Only the shape is checked
 * (one signature, a JSON payload): the webhook judges the rest, so a single approval and a plan
 * approval are countersigned alike.
 */
export async function countersign(
  token: ParsedToken,
  signer: JwsSigner,
): Promise<{ json: string; protectedHeader: string; signature: string }> {
  if (token.signatures.length !== 1) {
    throw new TwokeyError(
      'ERR_TOKEN_INVALID',
      `the token already carries ${token.signatures.length} signatures; countersign the token the change system issued`,
    );
  }
  const payload = token.payload();
  if (!payload.ok) throw new TwokeyError('ERR_TOKEN_INVALID', `the token's ${payload.detail}`);
  const [issued] = token.signatures;
  const counter = await signSegment(token.payloadSegment, { typ: COUNTERSIGNATURE_TYPE }, signer);
  return { json: generalJson(token.payloadSegment, [issued, counter]), ...counter };
}
