/**
 * twokey as a library, for change systems and approvers: build a plan from the changes of a
 * release, compute digests, mint approvals (of one object or of a plan), countersign them with an
 * approver's key, attach them to rendered manifests, and verify a token against an entry the way
 * the webhook does. The `twokey` command is built on these
 * same functions. This file is the package's entry (`import … from 'twokey'`): it stands above
 * every layer and nothing in src/ imports it.
 */
import type { JWK } from 'jose';
import type { Binding } from './change/claims.ts';
import { type ApprovalOutcome, evaluateApproval } from './decision/approval.ts';
import { ObjectProofs } from './decision/plans.ts';
import { TwokeyError } from './errors.ts';
import { assertNoSharedKeys, loadApproverKeys } from './keys/approvers.ts';
import { importJwks, KeyRing } from './keys/jwks.ts';
import { countersign as countersignToken, type JwsSigner, localSigner } from './keys/signing.ts';
import { policyFromDocument } from './policy/load.ts';
import { POLICY_DEFAULTS } from './policy/policy.ts';
import { parseToken } from './token/jws.ts';

export type { ApprovalClaims, Binding, ChangeClaim, PlanClaim } from './change/claims.ts';
export { APPROVAL_TYPE, approvalClaims, COUNTERSIGNATURE_TYPE, PLAN_CLAIM_VERSION, planApprovalClaims } from './change/claims.ts';
export type { Action, ChangeSubject, ChangeTarget } from './change/digest.ts';
export { ACTIONS, canonicalDigest, deploySpec, digestOf, subjectJson } from './change/digest.ts';
export type { ApprovalOutcome, RejectionCode, VerifiedApproval } from './decision/approval.ts';
export type { ApprovalRequest, IssuerKeyPair, JwsSigner, PlanApprovalRequest, SigningRequest } from './keys/signing.ts';
export { generateIssuerKey, localSigner, mintApproval, mintPlanApproval } from './keys/signing.ts';
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
  /** The policy's `approvals` section (required, maxTtl, clockSkew, algorithms, countersign); defaults otherwise. */
  readonly approvals?: Readonly<Record<string, unknown>>;
  /** The approvers registry (identity and public keys each), for `approvals.countersign`. */
  readonly approvers?: readonly { readonly identity: string; readonly jwks: unknown }[];
  /** Seconds since the epoch; defaults to now. */
  readonly now?: number;
}

/**
 * Countersigns an approval (of one object or of a plan) as the change system issued it, with the
 * approver's private JWK or a signer that holds it: the JWS JSON General serialization that
 * `twokey countersign` prints, to attach in place of the token.
 */
export async function countersign(token: string, approverKey: JWK | JwsSigner): Promise<string> {
  const parsed = parseToken(token, POLICY_DEFAULTS.maxTokenBytes);
  if (!parsed.ok) throw new TwokeyError('ERR_TOKEN_INVALID', `the input is not an approval token: it ${parsed.detail}`);
  const signer =
    'sign' in approverKey && typeof approverKey.sign === 'function' ? (approverKey as JwsSigner) : localSigner(approverKey as JWK);
  return (await countersignToken(parsed, signer)).json;
}

/**
 * Judges one token against one entry with the webhook's own rules for a token (header, claims,
 * lifetime, audience, issuer keys, signature; for a plan approval, the proof in `annotations`;
 * with `approvals.countersign`, the approver's countersignature by a key of `approvers`).
 * The quorum (distinct approvers, not the requester nor the user) is the webhook's to count.
 */
export async function verifyApproval(input: VerifyApprovalInput): Promise<ApprovalOutcome> {
  const policy = policyFromDocument(
    {
      cluster: input.cluster,
      issuers: input.issuers.map(({ issuer }) => ({ issuer, jwksFile: 'jwks.json' })),
      ...(input.approvals ? { approvals: input.approvals } : {}),
      ...(input.approvers ? { approvers: input.approvers.map(({ identity, jwks }) => ({ identity, jwks })) } : {}),
    },
    '/',
    'verifyApproval',
  );
  const sets = await Promise.all(input.issuers.map(({ issuer, jwks }) => importJwks(issuer, jwks, `the JWKS of ${issuer}`)));
  const approvers = await loadApproverKeys(policy);
  assertNoSharedKeys(approvers, sets);
  const keys = new KeyRing(sets, approvers);
  const now = input.now ?? Math.floor(Date.now() / 1000);
  const plans = new ObjectProofs(input.annotations ?? {}).evidenceFor(input.entry);
  return evaluateApproval(input.token, input.entry, { policy, keys, now }, plans);
}
