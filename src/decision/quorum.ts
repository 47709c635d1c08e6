/**
 * The two-person rule over verified approvals: per change id, count pairwise distinct approvers
 * that are neither the user making the request nor a requester named by that change's approvals,
 * and (countersign mode) whose countersigning keys are distinct too; then check the groups the
 * quorum rule asks for among those counted.
 */

import type { Identity } from '../identity.ts';
import type { QuorumRule } from '../policy/approvers.ts';
import type { VerifiedApproval } from './approval.ts';

export interface Candidate {
  readonly key: string;
  readonly approval: VerifiedApproval;
}

export type Standing =
  | { readonly status: 'counted'; readonly change: string }
  | { readonly status: 'self'; readonly change: string }
  | { readonly status: 'requester'; readonly change: string }
  | {
      readonly status: 'duplicate';
      readonly change: string;
      readonly of: string;
      /** Counted already under this key: the same approver key, whatever the sub. */
      readonly sameKey?: boolean;
    };

/** A group the rule asks for that the counted approvers do not fill: how many it has of how many. */
export interface MissingGroup {
  readonly group: string;
  readonly atLeast: number;
  readonly have: number;
}

export interface ChangeTally {
  readonly change: string;
  readonly approvers: readonly Identity[];
  readonly requesters: readonly Identity[];
  /** The rule's groups still short of members among the approvers. */
  readonly missing: readonly MissingGroup[];
  /** The plans (their digests) the counted approvals approve; none for approvals of one object. */
  readonly plans: readonly string[];
}

export interface QuorumResult {
  /** The change that reached the quorum, if any. */
  readonly admitted: ChangeTally | undefined;
  /** Every change seen, best first. */
  readonly tallies: readonly ChangeTally[];
  /** How each candidate stood within its change, by annotation key. */
  readonly standing: ReadonlyMap<string, Standing>;
}

const met = (tally: ChangeTally, required: number) => tally.approvers.length >= required && tally.missing.length === 0;

export function tallyQuorum(candidates: readonly Candidate[], isUser: (approver: Identity) => boolean, rule: QuorumRule): QuorumResult {
  const byChange = new Map<string, Candidate[]>();
  for (const candidate of candidates) {
    const list = byChange.get(candidate.approval.change) ?? [];
    list.push(candidate);
    byChange.set(candidate.approval.change, list);
  }

  const standing = new Map<string, Standing>();
  const tallies: ChangeTally[] = [];
  for (const [change, list] of byChange) {
    // A requester named by any valid approval of the change is excluded from all of them.
    const requesters = [...new Set(list.flatMap((c) => (c.approval.requester ? [c.approval.requester] : [])))];
    const counted = new Map<Identity, string>();
    const keys = new Map<string, string>();
    const plans = new Set<string>();
    for (const { key, approval } of list) {
      const sameKey = approval.approverKey === undefined ? undefined : keys.get(approval.approverKey);
      if (isUser(approval.approver)) standing.set(key, { status: 'self', change });
      else if (requesters.includes(approval.approver)) standing.set(key, { status: 'requester', change });
      else if (counted.has(approval.approver)) {
        standing.set(key, { status: 'duplicate', change, of: counted.get(approval.approver) as string });
      } else if (sameKey !== undefined) {
        standing.set(key, { status: 'duplicate', change, of: sameKey, sameKey: true });
      } else {
        counted.set(approval.approver, key);
        if (approval.plan !== undefined) plans.add(approval.plan);
        if (approval.approverKey !== undefined) keys.set(approval.approverKey, key);
        standing.set(key, { status: 'counted', change });
      }
    }
    const approvers = [...counted.keys()];
    const missing = rule.groups.flatMap(({ group, atLeast, members }) => {
      const have = approvers.filter((a) => members.has(a)).length;
      return have >= atLeast ? [] : [{ group, atLeast, have }];
    });
    tallies.push({ change, approvers, requesters, missing, plans: [...plans] });
  }

  // Best first: a met quorum, then the most approvers, then the fewest groups missing.
  tallies.sort(
    (a, b) =>
      Number(met(b, rule.required)) - Number(met(a, rule.required)) ||
      b.approvers.length - a.approvers.length ||
      a.missing.length - b.missing.length ||
      (a.change < b.change ? -1 : a.change > b.change ? 1 : 0),
  );
  const admitted = tallies.find((t) => met(t, rule.required));
  return { admitted, tallies, standing };
}
