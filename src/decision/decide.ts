/**
 * The decision: one pure function of (request, policy, keys, namespace view, clock). The webhook
 * and `twokey check` both call it, so they cannot disagree. It never throws: anything it cannot
 * judge on a gated request becomes a refusal that says why.
 */
import type { AdmissionRequest } from '../kubernetes/admission.ts';
import { approvalAnnotations, describeOwners, type ObjectMeta } from '../kubernetes/objects.ts';
import { type ApprovalContext, type ExpectedBinding, evaluateApproval, tokenIdentity } from './approval.ts';
import { CannotJudge, type GateContext, gateRequest } from './gate.ts';
import { normalizeIdentity } from './identity.ts';
import { type Candidate, tallyQuorum } from './quorum.ts';
import { quote } from './text.ts';
import { type ApprovalReport, admittedVerdict, cannotJudgeVerdict, notGatedVerdict, refusedVerdict, type Verdict } from './verdict.ts';

export type DecisionContext = ApprovalContext & GateContext;

export async function decide(request: AdmissionRequest, ctx: DecisionContext): Promise<Verdict> {
  let gate: Awaited<ReturnType<typeof gateRequest>>;
  try {
    gate = await gateRequest(request, ctx);
  } catch (error) {
    if (error instanceof CannotJudge) return cannotJudgeVerdict(error.message);
    return cannotJudgeVerdict(`internal error (${error instanceof Error ? error.message : String(error)})`);
  }
  if (!gate.gated) return notGatedVerdict(gate.why);

  const { action, target, digest } = gate;
  const user = normalizeIdentity(request.user.username);
  if (user === undefined) {
    return cannotJudgeVerdict(
      `the requesting user ${quote(request.user.username)} is not a valid identity, so twokey cannot tell it apart from an approver`,
      { action, target, digest },
    );
  }

  const expected: ExpectedBinding = { action, ...target, digest };
  const annotations = approvalAnnotations(gate.approvalsFrom);
  const limit = ctx.policy.maxApprovalAnnotations;
  const { distinct, copyOf: copies } = setAsideCopies(annotations, ctx.policy.maxTokenBytes);
  const read = distinct.slice(0, limit);
  const outcomes = await Promise.all(read.map(({ value }) => evaluateApproval(value, expected, ctx)));

  const candidates: Candidate[] = [];
  const rejected = new Map<string, ApprovalReport>();
  read.forEach(({ key }, index) => {
    const outcome = outcomes[index];
    if (outcome === undefined) return;
    if (outcome.ok) candidates.push({ key, approval: outcome.approval });
    else
      rejected.set(key, {
        key,
        status: 'not-counted',
        code: outcome.code,
        detail: outcome.detail,
        ...(outcome.unknownKidOf ? { unknownKidOf: outcome.unknownKidOf } : {}),
      });
  });

  const quorum = tallyQuorum(candidates, user, ctx.policy.required);
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
        return {
          ...base,
          status: 'not-counted',
          code: 'self',
          detail: `approver ${quote(approver)} is the user making this request`,
        };
      case 'requester':
        return {
          ...base,
          status: 'not-counted',
          code: 'requester',
          detail: `approver ${quote(approver)} requested change ${quote(change)}`,
        };
      case 'duplicate':
        return {
          ...base,
          status: 'not-counted',
          code: 'duplicate',
          detail: `approver ${quote(approver)} already counted (${standing.of})`,
        };
      default:
        if (decisiveChange !== undefined && change !== decisiveChange) {
          const detail = `approves change ${quote(change)}, not ${quote(decisiveChange)}${quorum.admitted ? '' : ' (approvals of different change ids do not add up)'}`;
          return { ...base, status: 'not-counted', code: 'other-change', detail };
        }
        return {
          ...base,
          status: 'counted',
          detail: `approved by ${quote(approver)} for ${quote(change)}`,
        };
    }
  });
  // Reported in the annotations' order: what was read, copies, and what the limit left unread.
  const byKey = new Map(readReports.map((r) => [r.key, r]));
  const reports = annotations.map(({ key }): ApprovalReport => {
    const known = byKey.get(key);
    if (known) return known;
    const first = copies.get(key);
    if (first !== undefined) return { key, status: 'not-counted', code: 'duplicate', detail: `the same token as ${first}`, copyOf: first };
    return { key, status: 'not-read', code: 'limit', detail: `not read: only the first ${limit} distinct approval tokens are read` };
  });

  const facts = {
    action,
    target,
    digest,
    cluster: ctx.policy.cluster,
    required: ctx.policy.required,
    user,
    reports,
    limit,
    notes: action === 'deploy' ? ownerNotes(gate.approvalsFrom) : [],
    now: ctx.now,
  };
  if (quorum.admitted) {
    return admittedVerdict({
      ...facts,
      admitted: {
        change: quorum.admitted.change,
        approvers: quorum.admitted.approvers,
      },
    });
  }
  const best = quorum.tallies[0];
  return refusedVerdict(best ? { ...facts, best: { change: best.change, approvers: best.approvers } } : facts);
}

/**
 * The garbage collector deletes a workload when its owners are gone, and its deletes are exempt;
 * the deploy digest covers the spec only, so approvers are told about owners here.
 */
function ownerNotes(approvalsFrom: ObjectMeta): string[] {
  const owners = describeOwners(approvalsFrom);
  return owners ? [`owned by ${owners}: deleting an owner deletes this workload without delete approvals`] : [];
}

interface Annotation {
  readonly key: string;
  readonly value: string;
}

/**
 * Sets copies of one token aside before the read limit applies, so that copies never crowd out
 * another approval: a duplicate never makes the verdict worse than its single copy. The copy written
 * as a signer writes it stands for its group, so that an odd encoding of a token, which a decoder
 * might read differently, never displaces the token itself.
 */
function setAsideCopies(
  annotations: readonly Annotation[],
  maxTokenBytes: number,
): { distinct: Annotation[]; copyOf: Map<string, string> } {
  const groups = new Map<string, { key: string; canonical: boolean; slot: number }>();
  const setAside = new Map<string, string>();
  const distinct: Annotation[] = [];
  for (const annotation of annotations) {
    const token = tokenIdentity(annotation.value, maxTokenBytes);
    const group = token && groups.get(token.identity);
    if (token === undefined || group === undefined) {
      if (token) groups.set(token.identity, { key: annotation.key, canonical: token.canonical, slot: distinct.length });
      distinct.push(annotation);
    } else if (token.canonical && !group.canonical) {
      setAside.set(group.key, token.identity);
      distinct[group.slot] = annotation;
      group.key = annotation.key;
      group.canonical = true;
    } else {
      setAside.set(annotation.key, token.identity);
    }
  }
  const copyOf = new Map([...setAside].map(([key, identity]) => [key, groups.get(identity)?.key ?? '']));
  return { distinct, copyOf };
}
