/**
 * One parsed token → a verified approval bound to this change, or the reason it does not count:
 * the header rules, then the claim rules, then the signature, so junk costs little. The token's
 * syntax was read once by token/jws.ts; the claims it must carry are named in change/claims.ts.
 */
import { type CryptoKey, flattenedVerify } from 'jose';
import {
  APPROVAL_TYPE,
  BINDING_FIELDS,
  type Binding,
  BREAK_GLASS_CLAIM,
  BREAK_GLASS_MAX_ENTRIES,
  BREAK_GLASS_TYPE,
  BREAK_GLASS_VERSION,
  COUNTERSIGNATURE_TYPE,
  PLAN_CLAIM_VERSION,
} from '../change/claims.ts';
import { DIGEST_PATTERN } from '../change/digest.ts';
import { type Identity, normalizeIdentity } from '../identity.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import type { ApproverKey } from '../keys/approvers.ts';
import type { KeyRing } from '../keys/jwks.ts';
import { MAX_PLAN_ENTRIES } from '../plan/entries.ts';
import type { Policy } from '../policy/policy.ts';
import { quote } from '../text.ts';
import { type Decoded, type JwsSignature, type ParsedToken, parseToken, type TokenParse, type TokenRejectionCode } from '../token/jws.ts';
import type { PlanEvidence } from './plans.ts';

/** Stable codes for why an approval did not count; also a metrics label. */
export type RejectionCode =
  | TokenRejectionCode
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
  | 'binding'
  | 'proof'
  | 'countersignature';

export interface VerifiedApproval {
  readonly issuer: string;
  readonly jti: string;
  readonly approver: Identity;
  readonly change: string;
  readonly requester: Identity | undefined;
  readonly issuedAt: number;
  readonly expiresAt: number;
  /** For a plan approval: the plan's digest. */
  readonly plan?: string;
  /** The thumbprint of the approver's key that countersigned it (countersign mode): one key, one person. */
  readonly approverKey?: string;
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

const KEY_CARRYING_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'] as const;

/** A decoded header or payload, or the rejection its syntax earns. */
function decoded(part: Decoded): JsonObject {
  if (!part.ok) reject(part.code, part.detail);
  return (part as { value: JsonObject }).value;
}

function checkHeader(header: JsonObject, policy: Policy, expectedType: string): { alg: string; kid: string } {
  const { alg, typ, kid } = header;
  if (typeof alg !== 'string') return reject('algorithm', 'header has no alg');
  if (alg.toLowerCase() === 'none') reject('algorithm', 'alg "none" is never accepted');
  if (/^HS\d+$/i.test(alg)) reject('algorithm', `alg ${quote(alg)} (HMAC) is never accepted`);
  if (!policy.algorithms.has(alg)) {
    reject('algorithm', `alg ${quote(alg)} is not allowed (allowed: ${[...policy.algorithms].join(', ')})`);
  }
  if (typeof typ !== 'string') return reject('type', `typ is missing (expected ${expectedType})`);
  const type = typ.toLowerCase().replace(/^application\//, '');
  if (type !== expectedType) reject('type', `typ is ${quote(typ)}, expected ${expectedType}`);
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

/** The claims every token carries: who signed it for which cluster, who it speaks for, and when. */
interface CommonClaims {
  readonly issuer: string;
  readonly jti: string;
  readonly approver: Identity;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

function checkCommonClaims(
  payload: JsonObject,
  ctx: ApprovalContext,
  trusted: { readonly issuers: readonly string[]; readonly untrusted: string; readonly maxTtlSeconds: number },
): CommonClaims {
  const { policy, now } = ctx;
  const issuer = requireString(payload, 'iss');
  if (!trusted.issuers.includes(issuer)) reject('issuer', `issuer ${quote(issuer)} ${trusted.untrusted}`);

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
  if (expiresAt - issuedAt > trusted.maxTtlSeconds) {
    reject('lifetime', `lives ${Math.round(expiresAt - issuedAt)}s, more than the allowed ${trusted.maxTtlSeconds}s`);
  }
  if (now - skew >= expiresAt) reject('expired', `expired at ${isoTime(expiresAt)}`);
  return { issuer, jti, approver: approver as Identity, issuedAt, expiresAt };
}

/** The binding of an approval of one object: each field must equal the request's exactly. */
function checkBinding(twokey: JsonObject, expected: Binding): undefined {
  const mismatches: string[] = [];
  for (const field of BINDING_FIELDS) {
    const value = requireString(twokey, field, 'twokey.');
    if (value === expected[field]) continue;
    mismatches.push(field === 'digest' ? `digest ${quote(value, 20)}` : `${field} ${quote(value)} (not ${quote(expected[field])})`);
  }
  if (mismatches.length > 0) {
    throw new Rejection('binding', `bound to another change: ${mismatches.join(', ')}`, { mismatched: mismatches.length });
  }
  return undefined;
}

/**
 * A plan approval's claim: the plan's digest and size, in place of one object's binding, and the
 * object's proof that the entry `expected` is in that plan (decision/plans.ts).
 */
function checkPlanClaim(twokey: JsonObject, plans: PlanEvidence | undefined): string {
  if (twokey.v !== PLAN_CLAIM_VERSION) {
    reject(
      'claims',
      `twokey.v is ${quote(JSON.stringify(twokey.v) ?? '')}: plan approvals are v ${PLAN_CLAIM_VERSION}, approvals of one object carry no v`,
    );
  }
  for (const field of BINDING_FIELDS) {
    if (Object.hasOwn(twokey, field)) reject('claims', `twokey.${field} is set in a plan approval, which binds a plan, not one object`);
  }
  const plan = requireString(twokey, 'plan', 'twokey.');
  if (!DIGEST_PATTERN.test(plan)) reject('claims', 'twokey.plan is not sha256: and 64 lowercase hex digits');
  const { entries } = twokey;
  if (typeof entries !== 'number' || !Number.isSafeInteger(entries) || entries < 1 || entries > MAX_PLAN_ENTRIES) {
    reject('claims', `twokey.entries is not a number of entries from 1 to ${MAX_PLAN_ENTRIES}`);
  }
  if (plans === undefined) return reject('proof', 'a plan approval needs the object it is judged on, with its proofs');
  const proven = plans.check(plan, entries as number);
  if (!proven.ok) throw new Rejection(proven.code, proven.detail, proven.code === 'binding' ? { mismatched: 1 } : {});
  return plan;
}

function checkClaims(payload: JsonObject, ctx: ApprovalContext, expected: Binding, plans: PlanEvidence | undefined) {
  const { policy } = ctx;
  const common = checkCommonClaims(payload, ctx, {
    issuers: policy.issuers.map((trusted) => trusted.issuer),
    untrusted: 'is not trusted',
    maxTtlSeconds: policy.maxTtlSeconds,
  });
  const twokey = payload.twokey;
  if (!isJsonObject(twokey)) return reject('claims', `twokey claim is ${twokey === undefined ? 'missing' : 'not an object'}`);
  const change = requireString(twokey, 'change', 'twokey.');
  if (change.trim() === '') reject('claims', 'twokey.change is empty');
  let requester: Identity | undefined;
  if (twokey.requester !== undefined) {
    const raw = requireString(twokey, 'requester', 'twokey.');
    requester = normalizeIdentity(raw);
    if (requester === undefined) reject('identity', `twokey.requester ${quote(raw)} is not a valid identity`);
  }
  // An approval of one object carries its binding; a plan approval (v 2), the plan and the object's proof.
  const plan = twokey.v === undefined ? checkBinding(twokey, expected) : checkPlanClaim(twokey, plans);
  return { ...common, change, requester, ...(plan !== undefined ? { plan } : {}) };
}

/** Parses one annotation value and judges it against the change it must be bound to. Never throws on bad input. */
export function evaluateApproval(value: string, expected: Binding, ctx: ApprovalContext, plans?: PlanEvidence): Promise<ApprovalOutcome> {
  return judgeApproval(parseToken(value, ctx.policy.maxTokenBytes), expected, ctx, plans);
}

/** Verifies one signature of a token over its payload. */
async function verifySignature(token: ParsedToken, signature: JwsSignature, key: CryptoKey, alg: string): Promise<void> {
  await flattenedVerify({ protected: signature.protectedHeader, payload: token.payloadSegment, signature: signature.signature }, key, {
    algorithms: [alg],
  });
}

/** The approver's countersignature of a token and the registered key it names, or why it has none that counts. */
function countersignature(
  token: ParsedToken,
  approver: Identity,
  ctx: ApprovalContext,
): { signature: JwsSignature; key: ApproverKey; alg: string; cryptoKey: CryptoKey } {
  const counter = token.serialization === 'general' ? token.signatures[1] : undefined;
  if (counter === undefined) {
    return reject(
      'countersignature',
      token.serialization === 'compact'
        ? "is a compact JWS, which carries only the change system's signature; approvals.countersign counts an approval only with its approver's countersignature (JWS JSON General serialization, twokey countersign)"
        : "carries no countersignature; approvals.countersign counts an approval only with its approver's countersignature (twokey countersign)",
    );
  }
  let alg: string;
  let kid: string;
  try {
    ({ alg, kid } = checkHeader(decoded(counter.header()), ctx.policy, COUNTERSIGNATURE_TYPE));
  } catch (error) {
    if (error instanceof Rejection) return reject('countersignature', `countersignature: ${error.message}`);
    throw error;
  }
  const registry = ctx.keys.approvers;
  const key = registry?.find(approver, kid);
  if (registry === undefined || key === undefined) {
    const holders = registry?.holdersOf(kid) ?? [];
    return reject(
      'countersignature',
      holders.length > 0
        ? `countersigned with key ${quote(kid)} of ${holders.map((h) => quote(h)).join(', ')}, not a key of the approver ${quote(approver)}`
        : registry?.has(approver)
          ? `countersigned with key ${quote(kid)}, which is not registered for ${quote(approver)} (unknown approver key)`
          : `approver ${quote(approver)} has no key in the approvers registry (countersigned with unknown key ${quote(kid)})`,
    );
  }
  const cryptoKey = key.byAlgorithm.get(alg);
  if (cryptoKey === undefined) return reject('countersignature', `approver key ${quote(kid)} cannot verify alg ${quote(alg)}`);
  return { signature: counter, key, alg, cryptoKey };
}

/**
 * Judges one parsed token against the change it must be bound to; a plan approval, against the
 * proofs the object carries (`plans`). With approvals.countersign, either kind counts only with
 * its approver's countersignature. Never throws on bad input.
 */
export function judgeApproval(parsed: TokenParse, expected: Binding, ctx: ApprovalContext, plans?: PlanEvidence): Promise<ApprovalOutcome> {
  return judgeToken(parsed, ctx, APPROVAL_TYPE, ctx.policy.countersign, (payload) => checkClaims(payload, ctx, expected, plans));
}

/**
 * Header rules, the claims `check` reads, then the key of the issuer the claims name and the
 * signature; with `countersigned`, then the approver's countersignature over the same claims.
 * Never throws on bad input.
 */
async function judgeToken<T extends CommonClaims>(
  parsed: TokenParse,
  ctx: ApprovalContext,
  type: string,
  countersigned: boolean,
  check: (payload: JsonObject) => T,
): Promise<{ readonly ok: true; readonly approval: T } | Extract<ApprovalOutcome, { ok: false }>> {
  if (!parsed.ok) return { ok: false, code: parsed.code, detail: parsed.detail };
  const token = parsed;
  try {
    // A token these keys verified before skips decoding and the signature, never the checks below.
    const cached = ctx.keys.verified.get(token.text, ctx.now);
    const [signature] = token.signatures;
    const header = cached?.header ?? decoded(signature.header());
    const { alg, kid } = checkHeader(header, ctx.policy, type);
    const payload = cached?.payload ?? decoded(token.payload());
    // Header and claims depend on the policy, the clock and the request: checked on every use.
    const approval = check(payload);
    const counter = countersigned ? countersignature(token, approval.approver, ctx) : undefined;
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
      try {
        await verifySignature(token, signature, cryptoKey, alg);
      } catch {
        reject('signature', `signature does not verify with key ${quote(kid)}`);
      }
    }
    if (counter && cached?.counterKey !== counter.cryptoKey) {
      try {
        await verifySignature(token, counter.signature, counter.cryptoKey, counter.alg);
      } catch {
        reject(
          'countersignature',
          `countersignature does not verify with key ${quote(counter.key.kid)} of ${quote(counter.key.identity)} (made over other claims, or for another token)`,
        );
      }
    }
    if (!cached || cached.key !== cryptoKey || (counter && cached.counterKey !== counter.cryptoKey)) {
      ctx.keys.verified.set(token.text, {
        header,
        payload,
        key: cryptoKey,
        ...(counter ? { counterKey: counter.cryptoKey } : {}),
        expiresAt: approval.expiresAt + ctx.policy.clockSkewSeconds,
      });
    }
    return { ok: true, approval: counter ? { ...approval, approverKey: counter.key.thumbprint } : approval };
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

/** A break-glass token that verified: one approver, an incident, and the changes it names. */
export interface VerifiedBreakGlass extends CommonClaims {
  readonly incident: string;
  readonly requester: Identity | undefined;
}

export type BreakGlassOutcome = { readonly ok: true; readonly approval: VerifiedBreakGlass } | Extract<ApprovalOutcome, { ok: false }>;

const sameBinding = (entry: JsonObject, binding: Binding) => BINDING_FIELDS.every((field) => entry[field] === binding[field]);

/** The break-glass claim: its version, a non-empty incident, and changes that name every binding expected. */
function checkBreakGlassClaims(payload: JsonObject, ctx: ApprovalContext, expected: readonly Binding[]): VerifiedBreakGlass {
  const breakGlass = ctx.policy.breakGlass;
  if (breakGlass === undefined) return reject('issuer', 'no break-glass issuer is configured');
  const common = checkCommonClaims(payload, ctx, {
    issuers: [breakGlass.issuer],
    untrusted: 'is not the break-glass issuer',
    maxTtlSeconds: breakGlass.maxTtlSeconds,
  });
  const claim = payload[BREAK_GLASS_CLAIM];
  const where = `${BREAK_GLASS_CLAIM}.`;
  if (!isJsonObject(claim)) return reject('claims', `${BREAK_GLASS_CLAIM} claim is ${claim === undefined ? 'missing' : 'not an object'}`);
  if (claim.version !== BREAK_GLASS_VERSION)
    reject('claims', `${where}version is ${quote(String(claim.version))}, this twokey reads ${BREAK_GLASS_VERSION}`);
  const incident = requireString(claim, 'incident', where);
  if (incident.trim() === '') reject('claims', `${where}incident is empty`);
  const { changes } = claim;
  if (!Array.isArray(changes) || changes.length === 0) return reject('claims', `${where}changes must name at least one change`);
  if (changes.length > BREAK_GLASS_MAX_ENTRIES) reject('claims', `${where}changes names more than ${BREAK_GLASS_MAX_ENTRIES} changes`);
  const entries = changes.map((entry, index) => {
    if (!isJsonObject(entry)) return reject('claims', `${where}changes[${index}] is not an object`);
    for (const field of BINDING_FIELDS) requireString(entry, field, `${where}changes[${index}].`);
    return entry;
  });
  let requester: Identity | undefined;
  if (claim.requester !== undefined) {
    const raw = requireString(claim, 'requester', where);
    requester = normalizeIdentity(raw);
    if (requester === undefined) reject('identity', `${where}requester ${quote(raw)} is not a valid identity`);
  }
  const missing = expected.filter((binding) => !entries.some((entry) => sameBinding(entry, binding)));
  if (missing.length > 0) {
    throw new Rejection(
      'binding',
      `names no change of ${missing.map((b) => `the ${b.action} bound to digest ${b.digest}`).join(' or ')}: a break-glass token lets through only the changes it names`,
      { mismatched: missing.length },
    );
  }
  return { ...common, incident, requester };
}

/**
 * Judges the break-glass token against every binding the request needs: it counts only when it
 * names each of them. One approver by design: it is never countersigned, whatever
 * approvals.countersign says. Never throws on bad input.
 */
export function judgeBreakGlass(parsed: TokenParse, expected: readonly Binding[], ctx: ApprovalContext): Promise<BreakGlassOutcome> {
  // One signature, the break-glass issuer's, and no second one to be read past (README, "Break-glass").
  if (parsed.ok && parsed.serialization !== 'compact') {
    return Promise.resolve({ ok: false, code: 'malformed', detail: 'a break-glass token is a compact JWS, not the JSON form' });
  }
  return judgeToken(parsed, ctx, BREAK_GLASS_TYPE, false, (payload) => checkBreakGlassClaims(payload, ctx, expected));
}
