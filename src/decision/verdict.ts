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
  /** When plan approvals admitted it: the plans (their digests) they approve, for the trail. */
  readonly plans?: readonly string[];
  /** Groups the quorum rule asks for that its approvals do not fill. */
  readonly missing?: readonly MissingGroup[];
  /** Admitted by the break-glass token, not by a quorum. */
  readonly breakGlass?: true;
}

/** How the break-glass token on the object fared, when a request short of approvals had one. */
export interface BreakGlassReport {
  readonly key: string;
  readonly status: 'counted' | 'not-counted';
  /** Why it did not count: a rejection, or its approver is the user or the requester. */
  readonly code?: RejectionCode | 'self' | 'requester';
  /** For a token a check refused: what the check found (decision/approval.ts). */
  readonly detail?: string;
  readonly incident?: string;
  readonly approver?: string;
  readonly issuedAt?: number;
  readonly expiresAt?: number;
  /** When two ordinary approvals of the state it let through are due: iat + the policy's reviewWindow. */
  readonly reviewBy?: number;
}

/** What turned a refusal into an admission in warn mode: the policy's mode, or its list of namespaces. */
export type WarnScope = 'policy' | 'namespace';

/** Why a request admitted in warn mode would have been refused; a metrics label. */
export type WouldRefuseReason = 'no-approvals' | 'too-few-approvals' | 'missing-group' | 'break-glass-not-counted' | 'unmapped-user';

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

/**
 * What a verdict rests on: the gate's reason when it is not gated or cannot be judged; `planned`
 * for a dry run that asked for the digests (the plan marker), which never stores anything; else
 * its quorum.
 */
export type Grounds = { readonly kind: 'not-gated' | 'cannot-judge'; readonly why: string } | { readonly kind: 'planned' } | QuorumGrounds;

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
  /** Set when the request had a break-glass token and no quorum: whether it let the request through. */
  readonly breakGlass?: BreakGlassReport;
  /**
   * Admitted only because of warn mode: the aspects say what would have been refused. Only a
   * request judged by its quorum is ever admitted so; what cannot be judged is refused in any mode.
   */
  readonly wouldRefuse?: WarnScope;
}

/** Why a verdict admitted in warn mode would have been refused. */
export function wouldRefuseReason(verdict: Verdict): WouldRefuseReason {
  if (verdict.grounds.kind === 'cannot-judge') return 'unmapped-user';
  if (verdict.breakGlass?.status === 'not-counted') return 'break-glass-not-counted';
  const short = verdict.aspects.filter((a) => !a.allowed);
  const { grounds } = verdict;
  // Enough approvals, too few of them from a group the rule asks for: the count was never the problem.
  if (
    grounds.kind === 'quorum' &&
    short.length > 0 &&
    short.every((a) => (a.approvers?.length ?? 0) >= grounds.required && (a.missing?.length ?? 0) > 0)
  )
    return 'missing-group';
  return short.some((a) => (a.approvers?.length ?? 0) > 0) ? 'too-few-approvals' : 'no-approvals';
}

/** The verdict with the break-glass token judged: it admits the aspects short of a quorum, or says why not. */
export function withBreakGlass(verdict: Verdict, report: BreakGlassReport): Verdict {
  if (report.status !== 'counted') return { ...verdict, breakGlass: report };
  const aspects = verdict.aspects.map((a): AspectVerdict => (a.allowed ? a : { ...a, allowed: true, breakGlass: true }));
  return { ...verdict, allowed: true, aspects, breakGlass: report };
}

/** A refusal judged by its quorum, admitted in warn mode; the aspects keep what was missing. */
/** The verdict in warn mode (`scope` undefined: enforce): a quorum short of approvals is admitted and reported. */
export function warnedVerdict(verdict: Verdict, scope: WarnScope | undefined): Verdict {
  return scope === undefined || verdict.allowed || verdict.grounds.kind !== 'quorum'
    ? verdict
    : { ...verdict, allowed: true, wouldRefuse: scope };
}

/**
 * A user no identity rule maps, in warn mode: admitted and reported, since warn mode is where identity
 * rules are rolled out and this is the policy's gap, not an unreadable request. Only for that refusal.
 */
export function warnedUnmappedUser(refused: Verdict, scope: WarnScope | undefined): Verdict {
  return scope === undefined ? refused : { ...refused, allowed: true, wouldRefuse: scope };
}

/** The verdict as it stands in enforce mode: what warn mode admitted, refused. */
export function enforcedVerdict(verdict: Verdict): Verdict {
  if (verdict.wouldRefuse === undefined) return verdict;
  const { wouldRefuse: _, ...rest } = verdict;
  return { ...rest, allowed: false };
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

/**
 * A dry run of a gated change that carries the plan marker: admitted without approvals, since a
 * dry run stores nothing, so that the one who plans the change learns each aspect's digest.
 */
export function plannedVerdict(target: ChangeTarget, aspects: readonly [PlannedAspect, ...PlannedAspect[]]): Verdict {
  const [only, ...more] = aspects;
  return {
    allowed: true,
    action: actionLabel(aspects),
    target,
    aspects: aspects.map(({ action, digest, after }) => ({ action, digest, allowed: true, ...(after ? { after } : {}) })),
    ...(more.length === 0 ? { digest: only.digest } : {}),
    approvals: [],
    grounds: { kind: 'planned' },
  };
}

interface PlannedAspect {
  readonly action: Action;
  readonly digest: string;
  readonly after?: UnprotectState;
}

interface ChangeApprovers {
  readonly change: string;
  readonly approvers: readonly string[];
  readonly missing?: readonly MissingGroup[];
  /** The plans whose approvals admitted it. */
  readonly plans?: readonly string[];
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
    ...(admitted?.plans ? { plans: admitted.plans } : {}),
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
