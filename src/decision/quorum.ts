/**
 * The two-person rule over verified approvals: per change id, count pairwise distinct approvers
 * that are neither the user making the request nor a requester named by that change's approvals.
 */

import type { Identity } from '../identity.ts';
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
    };

export interface ChangeTally {
  readonly change: string;
  readonly approvers: readonly Identity[];
  readonly requesters: readonly Identity[];
}

export interface QuorumResult {
  /** The change that reached the quorum, if any. */
  readonly admitted: ChangeTally | undefined;
  /** Every change seen, best first. */
  readonly tallies: readonly ChangeTally[];
  /** How each candidate stood within its change, by annotation key. */
  readonly standing: ReadonlyMap<string, Standing>;
}

export function tallyQuorum(candidates: readonly Candidate[], user: Identity, required: number): QuorumResult {
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
    for (const { key, approval } of list) {
      if (approval.approver === user) standing.set(key, { status: 'self', change });
      else if (requesters.includes(approval.approver)) standing.set(key, { status: 'requester', change });
      else if (counted.has(approval.approver)) {
        standing.set(key, {
          status: 'duplicate',
          change,
          of: counted.get(approval.approver) as string,
        });
      } else {
        counted.set(approval.approver, key);
        standing.set(key, { status: 'counted', change });
      }
    }
    tallies.push({ change, approvers: [...counted.keys()], requesters });
  }

  tallies.sort((a, b) => b.approvers.length - a.approvers.length || (a.change < b.change ? -1 : a.change > b.change ? 1 : 0));
  const admitted = tallies.find((t) => t.approvers.length >= required);
  return { admitted, tallies, standing };
}
