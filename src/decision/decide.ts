/**
 * The decision: one pure function of (request, policy, keys, namespace view, clock). The webhook
 * and `twokey check` both call it, so they cannot disagree. It never throws: anything it cannot
 * judge on a gated request becomes a refusal that says why. It finds the facts (verdict.ts) and
 * has them worded (wording.ts).
 */

import type { Binding } from '../change/claims.ts';
import type { ChangeTarget } from '../change/digest.ts';
import type { AdmissionRequest } from '../kubernetes/admission.ts';
import {
  approvalAnnotations,
  BREAK_GLASS_ANNOTATION,
  criticalLabelLookAlike,
  type ObjectMeta,
  ownerNames,
  PLAN_MARKER_ANNOTATION,
  readMeta,
  typeOfResource,
} from '../kubernetes/objects.ts';
import { type QuorumRule, quorumRuleFor } from '../policy/approvers.ts';
import { isUser, type MappedUser, mapUser } from '../policy/identities.ts';
import { warnScope } from '../policy/policy.ts';
import { parseToken, type TokenParse } from '../token/jws.ts';
import { type ApprovalContext, judgeApproval, judgeBreakGlass } from './approval.ts';
import { CannotJudge, type Gate, type GateContext, type GatedAspect, gateRequest } from './gate.ts';
import { ObjectProofs } from './plans.ts';
import { type Candidate, tallyQuorum } from './quorum.ts';
import {
  type ApprovalReport,
  type AspectFacts,
  actionLabel,
  type BreakGlassReport,
  cannotJudgeVerdict,
  type LookAlike,
  notGatedVerdict,
  plannedVerdict,
  quorumVerdict,
  type Verdict,
  type WarnScope,
  warnedUnmappedUser,
  warnedVerdict,
  withBreakGlass,
} from './verdict.ts';
import { type Decision, internalError, unmappedUser, wordVerdict } from './wording.ts';

export type DecisionContext = ApprovalContext & GateContext;

export async function decide(request: AdmissionRequest, ctx: DecisionContext): Promise<Decision> {
  const verdict = await judge(request, ctx);
  const lookAlike = lookAlikeOf(request);
  return wordVerdict(lookAlike === undefined ? verdict : { ...verdict, lookAlike });
}

/** A verdict with its words, for a request that could not be judged at all. */
export function cannotJudge(why: string): Decision {
  return wordVerdict(cannotJudgeVerdict(why));
}

/** The critical label of the object under review when it protects nothing ("True", "yes"). */
function lookAlikeOf(request: AdmissionRequest): LookAlike | undefined {
  const type = typeOfResource(request.resource);
  // Only where the review carries the object itself (not a Scale, nor CONNECT options).
  if (type === undefined || request.kind.group !== type.group || request.kind.kind !== type.kind) return undefined;
  const subject = request.operation === 'DELETE' ? request.oldObject : request.object;
  if (subject === null) return undefined;
  let labels: Readonly<Record<string, string>>;
  try {
    ({ labels } = readMeta(subject));
  } catch {
    return undefined;
  }
  const value = criticalLabelLookAlike(labels);
  return value === undefined ? undefined : { value, kind: type.kind };
}

async function judge(request: AdmissionRequest, ctx: DecisionContext): Promise<Verdict> {
  let gate: Gate;
  try {
    gate = await gateRequest(request, ctx);
  } catch (error) {
    if (error instanceof CannotJudge) return cannotJudgeVerdict(error.message);
    return cannotJudgeVerdict(internalError(error instanceof Error ? error.message : String(error)));
  }
  if (!gate.gated) return notGatedVerdict(gate.why);

  const { target, aspects } = gate;
  const user = mapUser(ctx.policy.identities, request.user.username);
  if (!user.ok) {
    const refused = cannotJudgeVerdict(unmappedUser(request.user.username, user), {
      action: actionLabel(aspects),
      target,
      ...(aspects.length === 1 ? { digest: aspects[0].digest } : {}),
    });
    // Invalid or ambiguous names stay refused in warn mode too.
    return user.problem === 'unmapped' ? warnedUnmappedUser(refused, warnScopeOf(ctx.policy, target)) : refused;
  }

  // A dry run stores nothing: with the plan marker it is admitted, each aspect's digest told.
  if (request.dryRun && Object.hasOwn(gate.approvalsFrom.annotations, PLAN_MARKER_ANNOTATION)) return plannedVerdict(target, aspects);

  const limit = ctx.policy.maxApprovalAnnotations;
  const annotations = approvalAnnotations(gate.approvalsFrom).map(({ key, value }) => ({
    key,
    token: parseToken(value, ctx.policy.maxTokenBytes),
  }));
  const { distinct, copyOf } = setAsideCopies(annotations);
  const tokens: Tokens = { annotations, read: distinct.slice(0, limit), copyOf, proofs: new ObjectProofs(gate.approvalsFrom.annotations) };
  // One rule for the request: its aspects share the object, hence the namespace.
  const rule = quorumRuleFor(ctx.policy.approvalRules, ctx.policy.required, target.namespace === '' ? target.name : target.namespace);
  const judged = await Promise.all(aspects.map((aspect) => judgeAspect(aspect, target, tokens, user, rule, ctx)));
  const [first, ...rest] = judged.map((j) => j.facts);
  if (first === undefined) return cannotJudgeVerdict(internalError('a gated request without an aspect'));
  // The deploy digest covers the spec only: approvers are told about the owners, whose deletion deletes the workload.
  const owners = aspects.some((a) => a.action === 'deploy') ? ownerNames(gate.approvalsFrom) : [];
  let verdict = quorumVerdict({
    target,
    cluster: ctx.policy.cluster,
    required: rule.required,
    ...(rule.groups.length > 0 ? { groups: rule.groups.map(({ group, atLeast }) => ({ group, atLeast })) } : {}),
    user: user.identity,
    ...(user.from !== undefined ? { userFrom: user.from } : {}),
    limit,
    now: ctx.now,
    aspects: [first, ...rest],
    reports: mergeReports(judged),
    ...(owners.length > 0 ? { owners } : {}),
  });
  if (!verdict.allowed) {
    const breakGlass = await judgeBreakGlassAnnotation(gate.approvalsFrom, verdict, target, user, ctx);
    if (breakGlass) verdict = withBreakGlass(verdict, breakGlass);
  }
  return warnedVerdict(verdict, warnScopeOf(ctx.policy, target));
}

/** Warn mode is the policy's alone (its mode, or its list of namespaces): never an object's or a namespace's. */
function warnScopeOf(policy: DecisionContext['policy'], target: ChangeTarget): WarnScope | undefined {
  return warnScope(policy, target.resource === 'namespaces' ? target.name : target.namespace);
}

/**
 * The break-glass token on the object, judged for the aspects short of a quorum: it counts when
 * the break-glass issuer signed it, it names each of them, and its one approver is neither the
 * user (mapped as the quorum maps it: the identities rules, the user name itself, EKS's session
 * name) nor the requester it names. It is never countersigned and bypasses the quorum rule's
 * groups: one approver, by design, and loud. Undefined when the object carries none.
 */
async function judgeBreakGlassAnnotation(
  from: ObjectMeta,
  verdict: Verdict,
  target: ChangeTarget,
  user: Extract<MappedUser, { ok: true }>,
  ctx: DecisionContext,
): Promise<BreakGlassReport | undefined> {
  const key = BREAK_GLASS_ANNOTATION;
  const value = from.annotations[key];
  if (value === undefined) return undefined;
  const expected: Binding[] = verdict.aspects.filter((a) => !a.allowed).map((a) => ({ action: a.action, ...target, digest: a.digest }));
  const outcome = await judgeBreakGlass(parseToken(value, ctx.policy.maxTokenBytes), expected, ctx);
  if (!outcome.ok) return { key, status: 'not-counted', code: outcome.code, detail: outcome.detail };
  const { approver, incident, issuedAt, expiresAt, requester } = outcome.approval;
  const facts = { key, approver, incident, issuedAt, expiresAt };
  if (isUser(user, approver)) return { ...facts, status: 'not-counted', code: 'self' };
  if (approver === requester) return { ...facts, status: 'not-counted', code: 'requester' };
  const reviewBy = issuedAt + (ctx.policy.breakGlass?.reviewWindowSeconds ?? 0);
  return { ...facts, status: 'counted', reviewBy };
}

/** The approval annotations of the object, as read once for every aspect. */
interface Tokens {
  readonly annotations: readonly Annotation[];
  /** The distinct tokens read, at most the limit. */
  readonly read: readonly Annotation[];
  /** Annotations set aside as copies of another's token, by key: that annotation's key. */
  readonly copyOf: ReadonlyMap<string, string>;
  /** The object's proofs of plan entries, read when a plan approval names their plan. */
  readonly proofs: ObjectProofs;
}

/** How one aspect stands, and for each annotation how near its token came to this aspect's binding. */
interface JudgedAspect {
  readonly facts: AspectFacts;
  /** One report per annotation, in the annotations' order. */
  readonly reports: readonly ApprovalReport[];
  /** By annotation key: 0 counted, 1 not counted for a reason of its own, 2 + mismatched fields when bound elsewhere. */
  readonly rank: ReadonlyMap<string, number>;
}

/** Tallies one aspect with the two-person rule: distinct approvers of one change id, neither the user nor the requester. */
async function judgeAspect(
  aspect: GatedAspect,
  target: ChangeTarget,
  tokens: Tokens,
  user: Extract<MappedUser, { ok: true }>,
  rule: QuorumRule,
  ctx: DecisionContext,
): Promise<JudgedAspect> {
  const { action, digest } = aspect;
  const expected: Binding = { action, ...target, digest };
  const { read } = tokens;
  const plans = tokens.proofs.evidenceFor(expected);
  const outcomes = await Promise.all(read.map(({ token }) => judgeApproval(token, expected, ctx, plans)));

  const candidates: Candidate[] = [];
  const rejected = new Map<string, ApprovalReport>();
  const rank = new Map<string, number>();
  read.forEach(({ key }, index) => {
    const outcome = outcomes[index];
    if (outcome === undefined) return;
    if (outcome.ok) {
      candidates.push({ key, approval: outcome.approval });
      rank.set(key, 1);
      return;
    }
    rank.set(key, outcome.code === 'binding' ? 2 + (outcome.mismatched ?? 0) : 1);
    rejected.set(key, {
      key,
      status: 'not-counted',
      code: outcome.code,
      detail: outcome.detail,
      ...(outcome.unknownKidOf ? { unknownKidOf: outcome.unknownKidOf } : {}),
    });
  });

  const quorum = tallyQuorum(candidates, (approver) => isUser(user, approver), rule);
  const candidateByKey = new Map(candidates.map((c) => [c.key, c]));
  // The change the verdict is about: the admitted one, or the one closest to the quorum.
  const decisiveChange = quorum.admitted?.change ?? quorum.tallies[0]?.change;
  const readReports = read.map(({ key }): ApprovalReport => {
    const rejection = rejected.get(key);
    if (rejection) return rejection;
    const candidate = candidateByKey.get(key) as Candidate;
    const standing = quorum.standing.get(key);
    const { approver, change, expiresAt } = candidate.approval;
    const base = { key, approver, change, expiresAt };
    switch (standing?.status) {
      case 'self':
        return { ...base, status: 'not-counted', code: 'self' };
      case 'requester':
        return { ...base, status: 'not-counted', code: 'requester' };
      case 'duplicate':
        return {
          ...base,
          status: 'not-counted',
          code: 'duplicate',
          countedAt: standing.of,
          ...(standing.sameKey ? { sameKey: true } : {}),
        };
      default:
        if (decisiveChange !== undefined && change !== decisiveChange) {
          const verdictChange = { change: decisiveChange, admitted: quorum.admitted !== undefined };
          return { ...base, status: 'not-counted', code: 'other-change', verdictChange };
        }
        rank.set(key, 0);
        return { ...base, status: 'counted' };
    }
  });
  // Reported in the annotations' order: what was read, copies, and what the limit left unread.
  const byKey = new Map(readReports.map((r) => [r.key, r]));
  const reports = tokens.annotations.map(({ key }): ApprovalReport => {
    const known = byKey.get(key);
    if (known) return known;
    const first = tokens.copyOf.get(key);
    if (first !== undefined) return { key, status: 'not-counted', code: 'duplicate', copyOf: first };
    return { key, status: 'not-read', code: 'limit' };
  });

  const best = quorum.tallies[0];
  const facts: AspectFacts = {
    action,
    digest,
    ...(aspect.after ? { after: aspect.after } : {}),
    ...(quorum.admitted
      ? {
          admitted: {
            change: quorum.admitted.change,
            approvers: quorum.admitted.approvers,
            ...(quorum.admitted.plans.length > 0 ? { plans: quorum.admitted.plans } : {}),
          },
        }
      : best
        ? { best: { change: best.change, approvers: best.approvers, ...(best.missing.length > 0 ? { missing: best.missing } : {}) } }
        : rule.groups.length > 0
          ? { missing: rule.groups.map(({ group, atLeast }) => ({ group, atLeast, have: 0 })) }
          : {}),
  };
  return { facts, reports, rank };
}

/**
 * One report per annotation across the aspects: where its token counted, else where it came
 * nearest (a token bound to the unprotect says why it did not count there, not that it is no deploy).
 * With several aspects, each report names the aspect it was judged for.
 */
function mergeReports(judged: readonly JudgedAspect[]): ApprovalReport[] {
  const [first, ...rest] = judged;
  if (first === undefined) return [];
  if (rest.length === 0) return [...first.reports];
  return first.reports.map((report, index) => {
    let pick = { action: first.facts.action, report, rank: first.rank.get(report.key) ?? 1 };
    for (const other of rest) {
      const candidate = other.reports[index];
      const rank = candidate ? (other.rank.get(candidate.key) ?? 1) : Number.POSITIVE_INFINITY;
      if (candidate && rank < pick.rank) pick = { action: other.facts.action, report: candidate, rank };
    }
    return pick.report.status === 'not-read' || pick.report.copyOf !== undefined ? pick.report : { ...pick.report, action: pick.action };
  });
}

/** An approval annotation, its value read as a token once for every aspect. */
interface Annotation {
  readonly key: string;
  readonly token: TokenParse;
}

/**
 * Sets copies of one token aside before the read limit applies, so that copies never crowd out
 * another approval: a duplicate never makes the verdict worse than its single copy. The copy written
 * as a signer writes it stands for its group, so that an odd encoding of a token, which a decoder
 * might read differently, never displaces the token itself.
 */
function setAsideCopies(annotations: readonly Annotation[]): { distinct: Annotation[]; copyOf: Map<string, string> } {
  const groups = new Map<string, { key: string; canonical: boolean; slot: number }>();
  const setAside = new Map<string, string>();
  const distinct: Annotation[] = [];
  for (const annotation of annotations) {
    const identity = annotation.token.ok ? annotation.token.identity : undefined;
    const canonical = annotation.token.ok && annotation.token.canonical;
    const group = identity === undefined ? undefined : groups.get(identity);
    if (identity === undefined || group === undefined) {
      if (identity !== undefined) groups.set(identity, { key: annotation.key, canonical, slot: distinct.length });
      distinct.push(annotation);
    } else if (canonical && !group.canonical) {
      setAside.set(group.key, identity);
      distinct[group.slot] = annotation;
      group.key = annotation.key;
      group.canonical = true;
    } else {
      setAside.set(annotation.key, identity);
    }
  }
  const copyOf = new Map([...setAside].map(([key, identity]) => [key, groups.get(identity)?.key ?? '']));
  return { distinct, copyOf };
}
