/**
 * What an approval says (README, "The approval"): the claims a change system signs and the
 * webhook checks. Minting (keys/signing.ts) builds them here, and the checks (decision/approval.ts)
 * read them by the names and constants here, so the two sides cannot drift apart.
 */
import type { Action, ChangeTarget } from './digest.ts';

/** The JWS `typ` every approval carries. */
export const APPROVAL_TYPE = 'twokey-approval+jwt';

/**
 * The `typ` of an approver's countersignature over an approval's payload (the second signature of
 * its JWS JSON General serialization). Version 1 of the countersignature is this typ: a form that
 * changes what it means gets a typ of its own.
 */
export const COUNTERSIGNATURE_TYPE = 'twokey-countersignature+jws';

/** What an approval is bound to: one action on one object, and the digest of that change. */
export interface Binding extends ChangeTarget {
  readonly action: Action;
  readonly digest: string;
}

/** The members of the `twokey` claim that must equal the request's binding exactly. */
export const BINDING_FIELDS = ['action', 'resource', 'namespace', 'name', 'digest'] as const satisfies readonly (keyof Binding)[];

/** The `twokey` claim: the change id, the binding, and optionally who raised the change. */
export interface ChangeClaim extends Binding {
  readonly change: string;
  readonly requester?: string;
}

/** The `twokey.v` of a plan approval. An approval of one object carries no `v`. */
export const PLAN_CLAIM_VERSION = 2;

/**
 * The `twokey` claim of a plan approval: the change id and the plan it approves, by its digest
 * (the tree head of its entries) and its number of entries, instead of one object's binding.
 */
export interface PlanClaim {
  readonly v: typeof PLAN_CLAIM_VERSION;
  readonly change: string;
  readonly plan: string;
  readonly entries: number;
  readonly requester?: string;
}

/** The registered claims every token carries, approval or break-glass. */
export interface TokenClaims {
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly iat: number;
  readonly exp: number;
  readonly jti: string;
}

/** An approval's claims as a change system signs them: of one object, or of a plan (`PlanClaim`). */
export interface ApprovalClaims<Claim = ChangeClaim> extends TokenClaims {
  readonly twokey: Claim;
}

/** Who signs a token for which cluster, who it speaks for, and when. */
export interface TokenClaimsInput {
  readonly issuer: string;
  /** The cluster's name, as its policy gives it. */
  readonly audience: string;
  readonly approver: string;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  readonly ttlSeconds: number;
  readonly jti: string;
  readonly requester?: string;
}

export interface ApprovalClaimsInput extends TokenClaimsInput {
  readonly change: string;
  readonly binding: Binding;
}

export interface PlanApprovalClaimsInput extends TokenClaimsInput {
  readonly change: string;
  /** The plan's digest: "sha256:" and the hex of its tree head. */
  readonly plan: string;
  /** How many entries the plan holds. */
  readonly entries: number;
}

function tokenClaims(input: TokenClaimsInput): TokenClaims {
  return {
    iss: input.issuer,
    aud: input.audience,
    sub: input.approver,
    iat: input.issuedAt,
    exp: input.issuedAt + input.ttlSeconds,
    jti: input.jti,
  };
}

const requesterOf = (input: TokenClaimsInput) => (input.requester !== undefined ? { requester: input.requester } : {});

export function approvalClaims(input: ApprovalClaimsInput): ApprovalClaims {
  const { action, resource, namespace, name, digest } = input.binding;
  return { ...tokenClaims(input), twokey: { change: input.change, action, resource, namespace, name, digest, ...requesterOf(input) } };
}

export function planApprovalClaims(input: PlanApprovalClaimsInput): ApprovalClaims<PlanClaim> {
  return {
    ...tokenClaims(input),
    twokey: { v: PLAN_CLAIM_VERSION, change: input.change, plan: input.plan, entries: input.entries, ...requesterOf(input) },
  };
}

/**
 * A break-glass token (README, "Break-glass"): one approver's word, for an incident, on the
 * changes it names and no other. Its own `typ` and its own claim, so that an approval never passes
 * for one, nor one for an approval.
 */
export const BREAK_GLASS_TYPE = 'twokey-break-glass+jwt';

/** The claim a break-glass token carries its changes in; an approval has none. */
export const BREAK_GLASS_CLAIM = 'twokeyBreakGlass';

/** The version of the break-glass claim this code writes and reads. */
export const BREAK_GLASS_VERSION = 1;

/** The most changes one break-glass token may name. */
export const BREAK_GLASS_MAX_ENTRIES = 50;

/** The break-glass claim: its version, the incident, and each change it lets through. */
export interface BreakGlassClaim {
  readonly version: typeof BREAK_GLASS_VERSION;
  readonly incident: string;
  readonly changes: readonly Binding[];
  readonly requester?: string;
}

export interface BreakGlassClaims extends TokenClaims {
  readonly [BREAK_GLASS_CLAIM]: BreakGlassClaim;
}

export interface BreakGlassClaimsInput extends TokenClaimsInput {
  readonly incident: string;
  readonly changes: readonly Binding[];
}

export function breakGlassClaims(input: BreakGlassClaimsInput): BreakGlassClaims {
  return {
    ...tokenClaims(input),
    [BREAK_GLASS_CLAIM]: {
      version: BREAK_GLASS_VERSION,
      incident: input.incident,
      changes: input.changes.map(({ action, resource, namespace, name, digest }) => ({ action, resource, namespace, name, digest })),
      ...requesterOf(input),
    },
  };
}
