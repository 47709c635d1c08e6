/**
 * The verdict and how it is worded for people: the refusal message, warnings and audit
 * annotations. Wording lives here so the webhook, `twokey check` and the demo say the same thing.
 */
import type { RejectionCode } from './approval.ts';
import type { Action, ChangeTarget } from './digest.ts';
import { printable, quote, truncate } from './text.ts';

/** How one approval annotation fared. */
export interface ApprovalReport {
  readonly key: string;
  readonly status: 'counted' | 'not-counted' | 'not-read';
  /** Stable code for not-counted approvals: a rejection code, or self/requester/duplicate/other-change/short. */
  readonly code?: RejectionCode | 'self' | 'requester' | 'duplicate' | 'other-change' | 'short' | 'limit';
  readonly detail: string;
  readonly approver?: string;
  readonly change?: string;
  readonly expiresAt?: number;
  /** For an unknown kid: the trusted issuer whose keys may have rotated. */
  readonly unknownKidOf?: string;
  /** For a copy of a token another annotation holds: that annotation's key. */
  readonly copyOf?: string;
}

export interface Verdict {
  readonly allowed: boolean;
  /** The gated action, or undefined when the request is not gated. */
  readonly action: Action | undefined;
  readonly target?: ChangeTarget;
  readonly digest?: string;
  readonly change?: string;
  readonly approvers?: readonly string[];
  /** One line for logs: why this verdict. */
  readonly summary: string;
  /** The refusal message (status.message); starts with "twokey:". */
  readonly message?: string;
  readonly warnings: readonly string[];
  readonly auditAnnotations: Readonly<Record<string, string>>;
  readonly approvals: readonly ApprovalReport[];
}

const WARNING_MAX = 120;
const MAX_WARNINGS = 10;
export const EXPIRY_WARNING_SECONDS = 600;

export function describeTarget(action: Action, target: ChangeTarget): string {
  const where = target.namespace === '' ? target.name : `${target.namespace}/${target.name}`;
  return `${action} of ${target.resource} ${where}`;
}

/** Warnings kube-apiserver will pass on: printable, short, few. */
export function warningLines(lines: readonly string[]): string[] {
  const out = lines.map((line) => truncate(printable(line), WARNING_MAX)).filter((line) => line.trim() !== '');
  const unique = [...new Set(out)];
  if (unique.length <= MAX_WARNINGS) return unique;
  return [...unique.slice(0, MAX_WARNINGS - 1), `${unique.length - MAX_WARNINGS + 1} more twokey warnings not shown`];
}

/** Audit annotation values; keys are fixed, valid qualified-name parts. */
function audit(entries: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(entries)) if (value !== undefined) out[key] = truncate(printable(value), 1024);
  return out;
}

export function notGatedVerdict(why: string): Verdict {
  return {
    allowed: true,
    action: undefined,
    summary: `not gated: ${why}`,
    warnings: [],
    auditAnnotations: {},
    approvals: [],
  };
}

export function cannotJudgeVerdict(why: string, gated?: { action: Action; target: ChangeTarget; digest?: string }): Verdict {
  const what = gated ? `cannot judge the ${describeTarget(gated.action, gated.target)}` : 'cannot judge this request';
  return {
    allowed: false,
    action: gated?.action,
    ...(gated ? { target: gated.target } : {}),
    ...(gated?.digest ? { digest: gated.digest } : {}),
    summary: `refused: ${why}`,
    message: `twokey: ${what}: ${printable(why)}. twokey refuses what it cannot judge on a critical object; fix the cause and retry.`,
    warnings: [],
    auditAnnotations: audit({
      decision: 'refused',
      action: gated?.action,
      reason: why,
    }),
    approvals: [],
  };
}

export interface QuorumFacts {
  readonly action: Action;
  readonly target: ChangeTarget;
  readonly digest: string;
  readonly cluster: string;
  readonly required: number;
  readonly user: string;
  readonly reports: readonly ApprovalReport[];
  /** How many distinct approval tokens are read at most. */
  readonly limit: number;
  /** What approvers should know about the object beyond its digest. */
  readonly notes?: readonly string[];
  readonly admitted?: {
    readonly change: string;
    readonly approvers: readonly string[];
  };
  /** The best change short of the quorum, for the refusal. */
  readonly best?: {
    readonly change: string;
    readonly approvers: readonly string[];
  };
  readonly now: number;
}

export function admittedVerdict(
  facts: QuorumFacts & {
    admitted: { change: string; approvers: readonly string[] };
  },
): Verdict {
  const { action, target, digest, admitted, reports, now } = facts;
  const notes: string[] = (facts.notes ?? []).map((note) => `twokey: ${note}`);
  for (const report of reports) {
    if (report.status === 'counted' && report.expiresAt !== undefined && report.expiresAt - now <= EXPIRY_WARNING_SECONDS) {
      notes.push(`twokey: approval ${report.key} expires in ${Math.max(0, Math.round(report.expiresAt - now))}s`);
    }
  }
  for (const report of reports) {
    if (report.status !== 'counted') notes.push(`twokey: ${report.key} did not count: ${report.detail}`);
  }
  return {
    allowed: true,
    action,
    target,
    digest,
    change: admitted.change,
    approvers: admitted.approvers,
    summary: `admitted: ${describeTarget(action, target)} approved for ${admitted.change} by ${admitted.approvers.join(', ')}`,
    warnings: warningLines(notes),
    auditAnnotations: audit({
      decision: 'admitted',
      action,
      change: admitted.change,
      approvers: admitted.approvers.join(','),
      digest,
    }),
    approvals: reports,
  };
}

export function refusedVerdict(facts: QuorumFacts): Verdict {
  const { action, target, digest, cluster, required, user, reports, best } = facts;
  const found = best
    ? `${best.approvers.length} of ${required} required approvals (change ${quote(best.change)}${best.approvers.length ? `: ${best.approvers.map((a) => quote(a)).join(', ')}` : ''})`
    : `0 of ${required} required approvals`;
  // Every token read (at most the limit) gets its reason; copies of them and unread annotations
  // are summarised, so the message stays bounded however many annotations there are.
  const notCounted = reports.filter((r) => r.status === 'not-counted' && r.copyOf === undefined);
  const copies = reports.filter((r) => r.copyOf !== undefined);
  const notRead = reports.filter((r) => r.status === 'not-read');
  const reasons = notCounted.length
    ? ` Not counted: ${notCounted.map((r) => `${r.key}: ${truncate(printable(r.detail), 200)}`).join('; ')}.`
    : '';
  const copied = copies.length
    ? ` ${copies.length} ${copies.length === 1 ? 'annotation holds a copy' : 'annotations hold copies'} of another annotation's token, which is judged once: ${copies
        .slice(0, 3)
        .map((r) => `${r.key} (${r.copyOf})`)
        .join(', ')}${copies.length > 3 ? ', ...' : ''}.`
    : '';
  const unread = notRead.length
    ? ` ${notRead.length} more approval annotations were not read (only the first ${facts.limit} distinct tokens are read), e.g. ${notRead
        .slice(0, 3)
        .map((r) => r.key)
        .join(', ')}.`
    : '';
  const message =
    `twokey: ${describeTarget(action, target)} refused: ${found}. ` +
    `Needed: ${required} approvals of one change id from distinct approvers who are neither ${quote(user)} (making this request) nor the change's requester, ` +
    `each signed by a trusted change system for cluster ${quote(cluster)} and bound to digest ${digest}.${reasons}${copied}${unread}${(facts.notes ?? []).map((note) => ` Note: ${truncate(printable(note), 300)}.`).join('')} ` +
    `To approve: twokey approve --action ${action} --digest ${digest} ..., then attach each token as annotation approval.twokey.dev/<approver>.`;
  return {
    allowed: false,
    action,
    target,
    digest,
    ...(best ? { change: best.change, approvers: best.approvers } : {}),
    summary: `refused: ${describeTarget(action, target)}: ${found}`,
    message,
    warnings: [],
    auditAnnotations: audit({
      decision: 'refused',
      action,
      digest,
      ...(best ? { change: best.change } : {}),
    }),
    approvals: reports,
  };
}
