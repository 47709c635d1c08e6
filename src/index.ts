/**
 * twokey as a library, for change systems: build a plan from the changes of a release, compute
 * digests, mint approvals (of one object or of a plan), attach them to rendered manifests, and
 * verify a token against an entry the way the webhook does. The `twokey` command is built on these
 * same functions. This file is the package's entry (`import … from 'twokey'`): it stands above
 * every layer and nothing in src/ imports it.
 */
import type { Binding } from './change/claims.ts';
import { type ApprovalOutcome, evaluateApproval } from './decision/approval.ts';
import { ObjectProofs } from './decision/plans.ts';
import { importJwks, KeyRing } from './keys/jwks.ts';
import { policyFromDocument } from './policy/load.ts';

export type { ApprovalClaims, Binding, ChangeClaim, PlanClaim } from './change/claims.ts';
export { APPROVAL_TYPE, approvalClaims, PLAN_CLAIM_VERSION, planApprovalClaims } from './change/claims.ts';
export type { Action, ChangeSubject, ChangeTarget } from './change/digest.ts';
export { ACTIONS, canonicalDigest, deploySpec, digestOf, subjectJson } from './change/digest.ts';
export type { ApprovalOutcome, RejectionCode, VerifiedApproval } from './decision/approval.ts';
export type { ApprovalRequest, IssuerKeyPair, PlanApprovalRequest } from './keys/signing.ts';
export { generateIssuerKey, mintApproval, mintPlanApproval } from './keys/signing.ts';
export type { ApprovalFile, AttachInput } from './manifests/attach.ts';
export { AttachError, attachApprovals } from './manifests/attach.ts';
export type { PlanDocument, PlannedObject } from './plan/document.ts';
export { PLAN_API_VERSION, planDocument, readPlanDocument } from './plan/document.ts';
export type { EntryProof, PlanEntry, PlanProofs, PlanTree } from './plan/entries.ts';
export {
  decodeProofs,
  encodeProofs,
  entryLeaf,
  MAX_PLAN_ENTRIES,
  orderEntries,
  PLAN_PROOF_PREFIX,
  PlanError,
  planTree,
  proofAnnotationKey,
  provesEntry,
} from './plan/entries.ts';
export { inclusionPath, leafHash, treeHash, verifyInclusion } from './plan/merkle.ts';

export interface VerifyApprovalInput {
  /** The approval, a compact JWS as an annotation holds it. */
  readonly token: string;
  /** What it must approve: one action on one object, with the digest of that change. */
  readonly entry: Binding;
  /** The cluster's name: the approval's audience. */
  readonly cluster: string;
  /** The trusted issuers and their public keys (JWKS documents). */
  readonly issuers: readonly { readonly issuer: string; readonly jwks: unknown }[];
  /** For a plan approval: the object's annotations, which hold the proof of its entry. */
  readonly annotations?: Readonly<Record<string, string>>;
  /** The policy's `approvals` section (required, maxTtl, clockSkew, algorithms); defaults otherwise. */
  readonly approvals?: Readonly<Record<string, unknown>>;
  /** Seconds since the epoch; defaults to now. */
  readonly now?: number;
}

/**
 * Judges one token against one entry with the webhook's own rules for a token (header, claims,
 * lifetime, audience, issuer keys, signature; for a plan approval, the proof in `annotations`).
 * The quorum (distinct approvers, not the requester nor the user) is the webhook's to count.
 */
export async function verifyApproval(input: VerifyApprovalInput): Promise<ApprovalOutcome> {
  const policy = policyFromDocument(
    {
      cluster: input.cluster,
      issuers: input.issuers.map(({ issuer }) => ({ issuer, jwksFile: 'jwks.json' })),
      ...(input.approvals ? { approvals: input.approvals } : {}),
    },
    '/',
    'verifyApproval',
  );
  const keys = new KeyRing(await Promise.all(input.issuers.map(({ issuer, jwks }) => importJwks(issuer, jwks, `the JWKS of ${issuer}`))));
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const plans = new ObjectProofs(input.annotations ?? {}).evidenceFor(input.entry);
  return evaluateApproval(input.token, input.entry, { policy, keys, now }, plans);
}
