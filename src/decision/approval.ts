/**
 * One approval annotation → a verified approval bound to this change, or the reason it does not
 * count. Cheap structural checks come first and the signature last, so junk costs little.
 */
import { compactVerify } from 'jose';
import { APPROVAL_TYPE, BINDING_FIELDS, type Binding } from '../change/claims.ts';
import { type Identity, normalizeIdentity } from '../identity.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import type { KeyRing } from '../keys/jwks.ts';
import type { Policy } from '../policy/policy.ts';
import { quote } from '../text.ts';
import { decodeIJson, IJsonError } from './ijson.ts';

/** Stable codes for why an approval did not count; also a metrics label. */
export type RejectionCode =
  | 'too-large'
  | 'malformed'
  | 'not-ijson'
  | 'header'
  | 'algorithm'
  | 'type'
  | 'kid'
  | 'issuer'
  | 'signature'
  | 'audience'
  | 'claims'
  | 'identity'
  | 'not-yet-valid'
  | 'expired'
  | 'lifetime'
  | 'binding';

export interface VerifiedApproval {
  readonly issuer: string;
  readonly jti: string;
  readonly approver: Identity;
  readonly change: string;
  readonly requester: Identity | undefined;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

export type ApprovalOutcome =
  | { readonly ok: true; readonly approval: VerifiedApproval }
  | {
      readonly ok: false;
      readonly code: RejectionCode;
      readonly detail: string;
      /** The trusted issuer whose JWKS lacks the token's kid (worth a refetch: keys may have rotated). */
      readonly unknownKidOf?: string;
      /** For a token bound to another change: how many binding fields differ (fewer: a nearer change). */
      readonly mismatched?: number;
    };

export interface ApprovalContext {
  readonly policy: Policy;
  readonly keys: KeyRing;
  /** Seconds since the epoch. */
  readonly now: number;
}

class Rejection extends Error {
  readonly code: RejectionCode;
  readonly unknownKidOf: string | undefined;
  readonly mismatched: number | undefined;
  constructor(code: RejectionCode, detail: string, extra: { unknownKidOf?: string; mismatched?: number } = {}) {
    super(detail);
    this.code = code;
    this.unknownKidOf = extra.unknownKidOf;
    this.mismatched = extra.mismatched;
  }
}

const reject = (code: RejectionCode, detail: string): never => {
  throw new Rejection(code, detail);
};

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;

function decodeSegment(segment: string, what: 'header' | 'payload'): JsonObject {
  let value: unknown;
  try {
    value = decodeIJson(Buffer.from(segment, 'base64url'));
  } catch (error) {
    if (error instanceof IJsonError) reject('not-ijson', `${what} ${error.message} (tokens must be I-JSON)`);
    throw error;
  }
  if (!isJsonObject(value)) reject('malformed', `${what} is not a JSON object`);
  return value as JsonObject;
}

function checkHeader(header: JsonObject, policy: Policy): { alg: string; kid: string } {
  const { alg, typ, kid } = header;
  if (typeof alg !== 'string') return reject('algorithm', 'header has no alg');
  if (alg.toLowerCase() === 'none') reject('algorithm', 'alg "none" is never accepted');
  if (/^HS\d+$/i.test(alg)) reject('algorithm', `alg ${quote(alg)} (HMAC) is never accepted`);
  if (!policy.algorithms.has(alg)) {
    reject('algorithm', `alg ${quote(alg)} is not allowed (allowed: ${[...policy.algorithms].join(', ')})`);
  }
  if (typeof typ !== 'string') return reject('type', `typ is missing (expected ${APPROVAL_TYPE})`);
  const type = typ.toLowerCase().replace(/^application\//, '');
  if (type !== APPROVAL_TYPE) reject('type', `typ is ${quote(typ)}, expected ${APPROVAL_TYPE}`);
  if (typeof kid !== 'string' || kid === '') return reject('kid', 'header has no kid');
  for (const name of KEY_CARRYING_HEADERS) {
    if (name in header) reject('header', `header carries its own key reference (${name}); keys come only from the issuer's JWKS`);
  }
  if ('crit' in header) reject('header', 'header has crit extensions, which twokey does not understand');
  if ('b64' in header) reject('header', 'header has b64, which approvals must not use');
  return { alg, kid };
}

function requireString(claims: JsonObject, name: string, where = ''): string {
  const value = claims[name];
  if (typeof value !== 'string') reject('claims', `${where}${name} is ${value === undefined ? 'missing' : 'not a string'}`);
  return value as string;
}

function requireNumericDate(claims: JsonObject, name: string): number {
  const value = claims[name];
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    reject('claims', `${name} is ${value === undefined ? 'missing' : 'not a NumericDate'}`);
  }
  return value as number;
}

const isoTime = (seconds: number) => {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
};

function checkClaims(payload: JsonObject, ctx: ApprovalContext, expected: Binding) {
  const { policy, now } = ctx;
  const issuer = requireString(payload, 'iss');
  if (!policy.issuers.some((trusted) => trusted.issuer === issuer)) reject('issuer', `issuer ${quote(issuer)} is not trusted`);

  const { aud } = payload;
  if (typeof aud !== 'string') {
    reject('audience', aud === undefined ? 'aud is missing' : 'aud must be a single string (the cluster name)');
  }
  if (aud !== policy.cluster) reject('audience', `aud is ${quote(aud as string)}, this cluster is ${quote(policy.cluster)}`);

  const subject = requireString(payload, 'sub');
  const approver = normalizeIdentity(subject);
  if (approver === undefined) reject('identity', `sub ${quote(subject)} is not a valid identity`);
  const jti = requireString(payload, 'jti');
  if (jti === '') reject('claims', 'jti is empty');

  const issuedAt = requireNumericDate(payload, 'iat');
  const expiresAt = requireNumericDate(payload, 'exp');
  const skew = policy.clockSkewSeconds;
  if (issuedAt > now + skew) reject('not-yet-valid', `issued in the future (iat ${isoTime(issuedAt)})`);
  if (payload.nbf !== undefined) {
    const notBefore = requireNumericDate(payload, 'nbf');
    if (notBefore > now + skew) reject('not-yet-valid', `not valid before ${isoTime(notBefore)}`);
  }
  if (expiresAt <= issuedAt) reject('lifetime', 'exp is not after iat');
  if (expiresAt - issuedAt > policy.maxTtlSeconds) {
    reject('lifetime', `lives ${Math.round(expiresAt - issuedAt)}s, more than the allowed ${policy.maxTtlSeconds}s`);
  }
  if (now - skew >= expiresAt) reject('expired', `expired at ${isoTime(expiresAt)}`);

  const twokey = payload.twokey;
  if (!isJsonObject(twokey)) return reject('claims', `twokey claim is ${twokey === undefined ? 'missing' : 'not an object'}`);
  const change = requireString(twokey, 'change', 'twokey.');
  if (change.trim() === '') reject('claims', 'twokey.change is empty');
  const mismatches: string[] = [];
  for (const field of BINDING_FIELDS) {
    const value = requireString(twokey, field, 'twokey.');
    if (value === expected[field]) continue;
    mismatches.push(field === 'digest' ? `digest ${quote(value, 20)}` : `${field} ${quote(value)} (not ${quote(expected[field])})`);
  }
  let requester: Identity | undefined;
  if (twokey.requester !== undefined) {
    const raw = requireString(twokey, 'requester', 'twokey.');
    requester = normalizeIdentity(raw);
    if (requester === undefined) reject('identity', `twokey.requester ${quote(raw)} is not a valid identity`);
  }
  if (mismatches.length > 0) {
    throw new Rejection('binding', `bound to another change: ${mismatches.join(', ')}`, { mismatched: mismatches.length });
  }
  return {
    issuer,
    jti,
    approver: approver as Identity,
    change,
    requester,
    issuedAt,
    expiresAt,
  };
}

interface TokenParts {
  readonly header: string;
  readonly payload: string;
  readonly signature: string;
}

/** Whether a token is at most `maxBytes` of UTF-8 (its length in UTF-16 units first, which is cheap). */
function withinSize(token: string, maxBytes: number): boolean {
  return token.length <= maxBytes && Buffer.byteLength(token, 'utf8') <= maxBytes;
}

/** A base64url segment as a compact JWS may hold it: no padding, and a length some bytes encode to. */
function isSegment(segment: string): boolean {
  return SEGMENT.test(segment) && segment.length % 4 !== 1;
}

function splitToken(token: string): TokenParts {
  const segments = token.trim().split('.');
  if (segments.length !== 3) reject('malformed', `has ${segments.length} segments, a compact JWS has 3`);
  // An empty signature is left for the header checks to name (alg "none" tokens have one).
  if (!segments.every((segment, i) => (i === 2 && segment === '') || isSegment(segment))) {
    reject('malformed', 'is not base64url-encoded compact JWS');
  }
  const [header, payload, signature] = segments as [string, string, string];
  return { header, payload, signature };
}

/**
 * What a token is, whatever its encoding: its signing input as written (the signature covers those
 * exact characters) and the bytes of its signature, so that copies with other surrounding
 * whitespace, or other unused bits in the signature's last character, are one token. `canonical`
 * when the value is written as an encoder writes it. Undefined for a value that is not a compact
 * JWS of acceptable size: such a value is never the same token as another.
 */
export function tokenIdentity(value: string, maxTokenBytes: number): { identity: string; canonical: boolean } | undefined {
  const token = value.trim();
  if (!withinSize(token, maxTokenBytes)) return undefined;
  const segments = token.split('.');
  if (segments.length !== 3 || !segments.every(isSegment)) return undefined;
  const [header, payload, signature] = segments as [string, string, string];
  const canonicalSignature = isCanonicalSegment(signature) ? signature : Buffer.from(signature, 'base64url').toString('base64url');
  const identity = `${header}.${payload}.${canonicalSignature}`;
  return { identity, canonical: identity === value };
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Whether a base64url segment's last character leaves its unused bits at zero, as an encoder writes it. */
function isCanonicalSegment(segment: string): boolean {
  const unusedBits = segment.length % 4 === 2 ? 0xf : segment.length % 4 === 3 ? 0x3 : 0;
  return (BASE64URL_ALPHABET.indexOf(segment.at(-1) ?? 'A') & unusedBits) === 0;
}

/** Judges one approval token against the change it must be bound to. Never throws on bad input. */
export async function evaluateApproval(value: string, expected: Binding, ctx: ApprovalContext): Promise<ApprovalOutcome> {
  try {
    // Whitespace around a token (a YAML block scalar's newline) is not part of it.
    const token = value.trim();
    if (!withinSize(token, ctx.policy.maxTokenBytes)) {
      reject('too-large', `token is larger than ${ctx.policy.maxTokenBytes} bytes`);
    }
    // A token these keys verified before skips decoding and the signature, never the checks below.
    const cached = ctx.keys.verified.get(token, ctx.now);
    const parts = cached ? undefined : splitToken(token);
    const header = cached?.header ?? decodeSegment((parts as TokenParts).header, 'header');
    const { alg, kid } = checkHeader(header, ctx.policy);
    const payload = cached?.payload ?? decodeSegment((parts as TokenParts).payload, 'payload');
    // Header and claims depend on the policy, the clock and the request: checked on every use.
    const approval = checkClaims(payload, ctx, expected);
    const key = ctx.keys.find(approval.issuer, kid);
    if (key === undefined) {
      const detail = !ctx.keys.has(approval.issuer)
        ? `no JWKS of ${quote(approval.issuer)} is loaded yet`
        : ctx.keys.keyCount(approval.issuer) === 0
          ? `the JWKS of ${quote(approval.issuer)} holds no usable key (its keys were withdrawn)`
          : `kid ${quote(kid)} is not in the JWKS of ${quote(approval.issuer)}`;
      throw new Rejection('kid', detail, { unknownKidOf: approval.issuer });
    }
    const cryptoKey = key?.byAlgorithm.get(alg);
    if (cryptoKey === undefined) return reject('algorithm', `key ${quote(kid)} cannot verify alg ${quote(alg)}`);
    if (!cached || cached.key !== cryptoKey) {
      // (A remembered token always names the same key: the cache belongs to one immutable key ring.)
      const { header: h, payload: p, signature } = parts ?? splitToken(token);
      try {
        await compactVerify(`${h}.${p}.${signature}`, cryptoKey, { algorithms: [alg] });
      } catch {
        reject('signature', `signature does not verify with key ${quote(kid)}`);
      }
      ctx.keys.verified.set(token, { header, payload, key: cryptoKey, expiresAt: approval.expiresAt + ctx.policy.clockSkewSeconds });
    }
    return { ok: true, approval };
  } catch (error) {
    if (error instanceof Rejection) {
      return {
        ok: false,
        code: error.code,
        detail: error.message,
        ...(error.unknownKidOf ? { unknownKidOf: error.unknownKidOf } : {}),
        ...(error.mismatched ? { mismatched: error.mismatched } : {}),
      };
    }
    return {
      ok: false,
      code: 'malformed',
      detail: `cannot be read (${error instanceof Error ? error.name : 'error'})`,
    };
  }
}
