/**
 * The verdict as facts, without a word of text: whether the request is admitted, each gated
 * aspect's result, the approvals found and required, who was excluded and why, and one report with
 * a stable code per approval annotation. decision/wording.ts says all of it for people; logs,
 * metrics, Events and the scan read these fields.
 */
import type { Action, ChangeTarget, UnprotectState } from '../change/digest.ts';
import type { OwnerName } from '../kubernetes/objects.ts';
import type { RejectionCode } from './approval.ts';
import type { MissingGroup } from './quorum.ts';

/** Why an approval that verified did not count toward its change's quorum. */
export type ExclusionCode = 'self' | 'requester' | 'duplicate' | 'other-change';

/** How one approval annotation fared. */
export interface ApprovalReport {
  readonly key: string;
  readonly status: 'counted' | 'not-counted' | 'not-read';
  /** Stable code for an approval that did not count: a rejection, an exclusion, or `limit` for one not read. */
  readonly code?: RejectionCode | ExclusionCode | 'limit';
  /** For a token a check refused: what the check found, in the check's own words (decision/approval.ts). */
  readonly detail?: string;
  readonly approver?: string;
  readonly change?: string;
  readonly expiresAt?: number;
  /** For an unknown kid: the trusted issuer whose keys may have rotated. */
  readonly unknownKidOf?: string;
  /** For a copy of a token another annotation holds: that annotation's key. */
  readonly copyOf?: string;
  /** For an approver already counted: the annotation where that approver counted. */
  readonly countedAt?: string;
  /** With `countedAt`: counted there by the same approver key, whatever the sub. */
  readonly sameKey?: boolean;
  /** For an approval of another change: the change the verdict is about, and whether it reached its quorum. */
  readonly verdictChange?: { readonly change: string; readonly admitted: boolean };
  /** When the request has several aspects: the one this token was judged for (where it counted, or came nearest). */
  readonly action?: Action;
}

/** How one gated aspect of a request fared: each aspect needs a quorum of its own. */
export interface AspectVerdict {
  readonly action: Action;
  /** The digest its approvals must be bound to. */
  readonly digest: string;
  readonly allowed: boolean;
  /** For an unprotect: the state after the change, which its digest binds. */
  readonly after?: UnprotectState;
  /** The change that approved it, or the one closest to doing so; `approvers` are the approvals it found. */
  readonly change?: string;
  readonly approvers?: readonly string[];
  /** Groups the quorum rule asks for that its approvals do not fill. */
  readonly missing?: readonly MissingGroup[];
}

/** A verdict judged by the two-person rule: what the approvals were counted against. */
export interface QuorumGrounds {
  readonly kind: 'quorum';
  /** Approvals required per aspect. */
  readonly required: number;
  /** The user making the request, in the identity normal form: never an approver of it. */
  readonly user: string;
  /** The user name as Kubernetes gave it, when the policy's identities mapped it onto `user`. */
  readonly userFrom?: string;
  /** The groups the quorum rule asks approvals from, with how many each. */
  readonly groups?: readonly { readonly group: string; readonly atLeast: number }[];
  readonly cluster: string;
  /** How many distinct approval tokens are read at most. */
  readonly limit: number;
  /** The clock the approvals were judged at, in seconds since the epoch. */
  readonly now: number;
}

/** What a verdict rests on: the gate's reason when it is not gated or cannot be judged, else its quorum. */
export type Grounds = { readonly kind: 'not-gated' | 'cannot-judge'; readonly why: string } | QuorumGrounds;

/** A critical label that only looks like "true" on the object under review, and that object's kind. */
export interface LookAlike {
  readonly value: string;
  readonly kind: string;
}

export interface Verdict {
  readonly allowed: boolean;
  /**
   * The gated action, or undefined when the request is not gated. A request gated as several
   * actions names them joined by "+" (deploy+unprotect); `aspects` tells each one's result.
   */
  readonly action: string | undefined;
  readonly target?: ChangeTarget;
  /** Each gated aspect, in the order of ACTIONS; empty when not gated or not judged. */
  readonly aspects: readonly AspectVerdict[];
  /** With a single aspect: its digest, change and approvers (several aspects: see `aspects`). */
  readonly digest?: string;
  readonly change?: string;
  readonly approvers?: readonly string[];
  /** One report per approval annotation; with several aspects, where each token counted or came nearest. */
  readonly approvals: readonly ApprovalReport[];
  readonly grounds: Grounds;
  /** For a deploy of an object with owners: its owners, whose deletion deletes it without approvals (the digest binds the spec alone). */
  readonly owners?: readonly OwnerName[];
  /** Set whatever the verdict, which it never changes: the label was meant to protect the object. */
  readonly lookAlike?: LookAlike;
}

/** The actions of a request's aspects as one label: "deploy", or "deploy+unprotect". */
export function actionLabel(aspects: readonly { readonly action: Action }[]): string {
  return aspects.map((a) => a.action).join('+');
}

export function notGatedVerdict(why: string): Verdict {
  return { allowed: true, action: undefined, aspects: [], approvals: [], grounds: { kind: 'not-gated', why } };
}

export function cannotJudgeVerdict(why: string, gated?: { action: string; target: ChangeTarget; digest?: string }): Verdict {
  return {
    allowed: false,
    action: gated?.action,
    aspects: [],
    ...(gated ? { target: gated.target } : {}),
    ...(gated?.digest ? { digest: gated.digest } : {}),
    approvals: [],
    grounds: { kind: 'cannot-judge', why },
  };
}

interface ChangeApprovers {
  readonly change: string;
  readonly approvers: readonly string[];
  readonly missing?: readonly MissingGroup[];
}

/** One gated aspect as tallied: its binding and its quorum. */
export interface AspectFacts {
  readonly action: Action;
  readonly digest: string;
  /** For an unprotect: the state after the change, which its digest binds. */
  readonly after?: UnprotectState;
  /** The change that reached the quorum, if any. */
  readonly admitted?: ChangeApprovers;
  /** The best change short of the quorum. */
  readonly best?: ChangeApprovers;
  /** Without any approval: every group the rule asks for. */
  readonly missing?: readonly MissingGroup[];
}

export interface QuorumFacts {
  readonly target: ChangeTarget;
  readonly cluster: string;
  readonly required: number;
  readonly groups?: QuorumGrounds['groups'];
  readonly user: string;
  readonly userFrom?: string;
  readonly limit: number;
  readonly now: number;
  /** Every gated aspect of the request; admitted only when each reached its quorum. */
  readonly aspects: readonly [AspectFacts, ...AspectFacts[]];
  /** One report per approval annotation across the aspects. */
  readonly reports: readonly ApprovalReport[];
  readonly owners?: readonly OwnerName[];
}

function aspectVerdict(aspect: AspectFacts): AspectVerdict {
  const { action, digest, after, admitted, best } = aspect;
  const standing = admitted ?? best;
  const missing = admitted ? undefined : (best?.missing ?? aspect.missing);
  return {
    action,
    digest,
    allowed: admitted !== undefined,
    ...(after ? { after } : {}),
    ...(standing ? { change: standing.change, approvers: standing.approvers } : {}),
    ...(missing ? { missing } : {}),
  };
}

/** A request gated as several actions is admitted only when each aspect reached its own quorum. */
export function quorumVerdict(facts: QuorumFacts): Verdict {
  const { target, required, groups, user, userFrom, cluster, limit, now } = facts;
  const [only, ...more] = facts.aspects;
  const aspects = facts.aspects.map(aspectVerdict);
  const allowed = aspects.every((a) => a.allowed);
  const grounds: Grounds = {
    kind: 'quorum',
    required,
    ...(groups ? { groups } : {}),
    user,
    ...(userFrom !== undefined ? { userFrom } : {}),
    cluster,
    limit,
    now,
  };
  const owners = facts.owners ? { owners: facts.owners } : {};
  if (more.length > 0) return { allowed, action: actionLabel(aspects), target, aspects, approvals: facts.reports, grounds, ...owners };
  const standing = only.admitted ?? only.best;
  return {
    allowed,
    action: only.action,
    target,
    aspects,
    digest: only.digest,
    ...(standing ? { change: standing.change, approvers: standing.approvers } : {}),
    approvals: facts.reports,
    grounds,
    ...owners,
  };
}
