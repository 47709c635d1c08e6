/**
 * What an approval says (README, "The approval"): the claims a change system signs and the
 * webhook checks. Minting (keys/signing.ts) builds them here, and the checks (decision/approval.ts)
 * read them by the names and constants here, so the two sides cannot drift apart.
 */
import type { Action, ChangeTarget } from './digest.ts';

/** The JWS `typ` every approval carries. */
export const APPROVAL_TYPE = 'twokey-approval+jwt';

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

/** An approval's claims as a change system signs them. */
export interface ApprovalClaims<Claim = ChangeClaim> {
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly iat: number;
  readonly exp: number;
  readonly jti: string;
  readonly twokey: Claim;
}

interface CommonClaimsInput {
  readonly issuer: string;
  /** The cluster's name, as its policy gives it. */
  readonly audience: string;
  readonly approver: string;
  readonly change: string;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  readonly ttlSeconds: number;
  readonly jti: string;
  readonly requester?: string;
}

export interface ApprovalClaimsInput extends CommonClaimsInput {
  readonly binding: Binding;
}

export interface PlanApprovalClaimsInput extends CommonClaimsInput {
  /** The plan's digest: "sha256:" and the hex of its tree head. */
  readonly plan: string;
  /** How many entries the plan holds. */
  readonly entries: number;
}

function registered<Claim>(input: CommonClaimsInput, twokey: Claim): ApprovalClaims<Claim> {
  return {
    iss: input.issuer,
    aud: input.audience,
    sub: input.approver,
    iat: input.issuedAt,
    exp: input.issuedAt + input.ttlSeconds,
    jti: input.jti,
    twokey,
  };
}

const requesterOf = (input: CommonClaimsInput) => (input.requester !== undefined ? { requester: input.requester } : {});

export function approvalClaims(input: ApprovalClaimsInput): ApprovalClaims {
  const { action, resource, namespace, name, digest } = input.binding;
  return registered(input, { change: input.change, action, resource, namespace, name, digest, ...requesterOf(input) });
}

export function planApprovalClaims(input: PlanApprovalClaimsInput): ApprovalClaims<PlanClaim> {
  return registered(input, {
    v: PLAN_CLAIM_VERSION,
    change: input.change,
    plan: input.plan,
    entries: input.entries,
    ...requesterOf(input),
  });
}
