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

/** An approval's claims as a change system signs them. */
export interface ApprovalClaims {
  readonly iss: string;
  readonly aud: string;
  readonly sub: string;
  readonly iat: number;
  readonly exp: number;
  readonly jti: string;
  readonly twokey: ChangeClaim;
}

export interface ApprovalClaimsInput {
  readonly issuer: string;
  /** The cluster's name, as its policy gives it. */
  readonly audience: string;
  readonly approver: string;
  readonly change: string;
  readonly binding: Binding;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  readonly ttlSeconds: number;
  readonly jti: string;
  readonly requester?: string;
}

export function approvalClaims(input: ApprovalClaimsInput): ApprovalClaims {
  const { action, resource, namespace, name, digest } = input.binding;
  return {
    iss: input.issuer,
    aud: input.audience,
    sub: input.approver,
    iat: input.issuedAt,
    exp: input.issuedAt + input.ttlSeconds,
    jti: input.jti,
    twokey: {
      change: input.change,
      action,
      resource,
      namespace,
      name,
      digest,
      ...(input.requester !== undefined ? { requester: input.requester } : {}),
    },
  };
}
