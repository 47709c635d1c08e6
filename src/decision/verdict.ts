/**
 * The verdict and how it is worded for people: the refusal message, warnings and audit
 * annotations. Wording lives here so the webhook, `twokey check` and the demo say the same thing.
 */

import type { Action, ChangeTarget, UnprotectState } from '../change/digest.ts';
import { CRITICAL_LABEL, CRITICAL_VALUE } from '../kubernetes/objects.ts';
import { printable, quote, truncate } from '../text.ts';
import type { RejectionCode } from './approval.ts';

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
  /** The change that approved it, or the one closest to doing so. */
  readonly change?: string;
  readonly approvers?: readonly string[];
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
  /** One line for logs: why this verdict. */
  readonly summary: string;
  /** The refusal message (status.message); starts with "twokey:". */
  readonly message?: string;
  readonly warnings: readonly string[];
  readonly auditAnnotations: Readonly<Record<string, string>>;
  /** One report per approval annotation; with several aspects, where each token counted or came nearest. */
  readonly approvals: readonly ApprovalReport[];
}

const WARNING_MAX = 120;
const MAX_WARNINGS = 10;
export const EXPIRY_WARNING_SECONDS = 600;

/** The actions of a request's aspects as one word: "deploy", or "deploy+unprotect". */
export function actionLabel(aspects: readonly { readonly action: Action }[]): string {
  return aspects.map((a) => a.action).join('+');
}

export function describeTarget(action: string, target: ChangeTarget): string {
  const where = target.namespace === '' ? target.name : `${target.namespace}/${target.name}`;
  return `${action} of ${target.resource} ${where}`;
}

/** Says that a look-alike of the critical label protects nothing, e.g. for a warning or a scan finding. */
export function describeLookAlike(value: string, kind: string): string {
  return `label ${CRITICAL_LABEL} is ${quote(value, 20)}, not "${CRITICAL_VALUE}": it does not make this ${kind} critical`;
}

const OWNERS_NAMED = 5;

/**
 * What an unprotect's approvals bind besides the object, in words: " (after the change: critical
 * false, owners none)". Owner names come from the request, so each is cut short: too short to
 * pass for a digest.
 */
function describeAfter(after: UnprotectState | undefined): string {
  if (after === undefined) return '';
  const named = after.owners.slice(0, OWNERS_NAMED).map((o) => `${truncate(printable(o.kind), 40)}/${truncate(printable(o.name), 60)}`);
  const more = after.owners.length - named.length;
  const owners = named.length === 0 ? 'none' : `${named.join(', ')}${more > 0 ? ` and ${more} more` : ''}`;
  return ` (after the change: critical ${after.critical}, owners ${owners})`;
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
    aspects: [],
    summary: `not gated: ${why}`,
    warnings: [],
    auditAnnotations: {},
    approvals: [],
  };
}

export function cannotJudgeVerdict(why: string, gated?: { action: string; target: ChangeTarget; digest?: string }): Verdict {
  const what = gated ? `cannot judge the ${describeTarget(gated.action, gated.target)}` : 'cannot judge this request';
  return {
    allowed: false,
    action: gated?.action,
    aspects: [],
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

interface ChangeApprovers {
  readonly change: string;
  readonly approvers: readonly string[];
}

/** One gated aspect as tallied: its binding, how each approval stood, and its quorum. */
export interface AspectFacts {
  readonly action: Action;
  readonly digest: string;
  /** For an unprotect: the state after the change, which its digest binds. */
  readonly after?: UnprotectState;
  readonly reports: readonly ApprovalReport[];
  /** What approvers should know about the object beyond its digest. */
  readonly notes?: readonly string[];
  /** The change that reached the quorum, if any. */
  readonly admitted?: ChangeApprovers;
  /** The best change short of the quorum, for the refusal. */
  readonly best?: ChangeApprovers;
}

export interface QuorumFacts {
  readonly target: ChangeTarget;
  readonly cluster: string;
  readonly required: number;
  readonly user: string;
  /** How many distinct approval tokens are read at most. */
  readonly limit: number;
  readonly now: number;
  /** Every gated aspect of the request; admitted only when each reached its quorum. */
  readonly aspects: readonly AspectFacts[];
  /** One report per approval annotation across the aspects. */
  readonly reports: readonly ApprovalReport[];
}

export function quorumVerdict(facts: QuorumFacts): Verdict {
  const [only, ...more] = facts.aspects;
  if (only === undefined) return cannotJudgeVerdict('internal error (a gated request without an aspect)');
  if (more.length > 0) return severalAspectsVerdict(facts);
  return only.admitted ? admittedVerdict(facts, only, only.admitted) : refusedVerdict(facts, only);
}

function aspectVerdict(aspect: AspectFacts): AspectVerdict {
  const { action, digest, after, admitted, best } = aspect;
  const standing = admitted ?? best;
  return {
    action,
    digest,
    allowed: admitted !== undefined,
    ...(after ? { after } : {}),
    ...(standing ? { change: standing.change, approvers: standing.approvers } : {}),
  };
}

/** Warnings of an admitted request: notes, approvals about to expire, and those that did not count. */
function admissionWarnings(notes: readonly string[], reports: readonly ApprovalReport[], now: number): string[] {
  const lines = notes.map((note) => `twokey: ${note}`);
  for (const report of reports) {
    if (report.status === 'counted' && report.expiresAt !== undefined && report.expiresAt - now <= EXPIRY_WARNING_SECONDS) {
      lines.push(`twokey: approval ${report.key} expires in ${Math.max(0, Math.round(report.expiresAt - now))}s`);
    }
  }
  for (const report of reports) {
    if (report.status !== 'counted') lines.push(`twokey: ${report.key} did not count: ${report.detail}`);
  }
  return warningLines(lines);
}

function admittedVerdict(facts: QuorumFacts, aspect: AspectFacts, admitted: ChangeApprovers): Verdict {
  const { target, reports, now } = facts;
  const { action, digest } = aspect;
  return {
    allowed: true,
    action,
    target,
    aspects: [aspectVerdict(aspect)],
    digest,
    change: admitted.change,
    approvers: admitted.approvers,
    summary: `admitted: ${describeTarget(action, target)}${describeAfter(aspect.after)} approved for ${admitted.change} by ${admitted.approvers.join(', ')}`,
    warnings: admissionWarnings(aspect.notes ?? [], reports, now),
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

/** What an aspect's approvals came to, e.g. `1 of 2 required approvals (change "CHG1": "bob")`. */
function found(aspect: AspectFacts, required: number): string {
  const { best } = aspect;
  return best
    ? `${best.approvers.length} of ${required} required approvals (change ${quote(best.change)}${best.approvers.length ? `: ${best.approvers.map((a) => quote(a)).join(', ')}` : ''})`
    : `0 of ${required} required approvals`;
}

/**
 * Why approvals did not count. Every token read (at most the limit) gets its reason; copies of
 * them and unread annotations are summarised, so the message stays bounded however many
 * annotations there are.
 */
function notCountedText(reports: readonly ApprovalReport[], limit: number): string {
  const notCounted = reports.filter((r) => r.status === 'not-counted' && r.copyOf === undefined);
  const copies = reports.filter((r) => r.copyOf !== undefined);
  const notRead = reports.filter((r) => r.status === 'not-read');
  const reasons = notCounted.length
    ? ` Not counted: ${notCounted.map((r) => `${r.key}${r.action ? ` (${r.action})` : ''}: ${truncate(printable(r.detail), 200)}`).join('; ')}.`
    : '';
  const copied = copies.length
    ? ` ${copies.length} ${copies.length === 1 ? 'annotation holds a copy' : 'annotations hold copies'} of another annotation's token, which is judged once: ${copies
        .slice(0, 3)
        .map((r) => `${r.key} (${r.copyOf})`)
        .join(', ')}${copies.length > 3 ? ', ...' : ''}.`
    : '';
  const unread = notRead.length
    ? ` ${notRead.length} more approval annotations were not read (only the first ${limit} distinct tokens are read), e.g. ${notRead
        .slice(0, 3)
        .map((r) => r.key)
        .join(', ')}.`
    : '';
  return `${reasons}${copied}${unread}`;
}

function notesText(notes: readonly string[]): string {
  return notes.map((note) => ` Note: ${truncate(printable(note), 300)}.`).join('');
}

function whoMayApprove(facts: QuorumFacts): string {
  return (
    `${facts.required} approvals of one change id from distinct approvers who are neither ${quote(facts.user)} (making this request) nor the change's requester, ` +
    `each signed by a trusted change system for cluster ${quote(facts.cluster)}`
  );
}

function refusedVerdict(facts: QuorumFacts, aspect: AspectFacts): Verdict {
  const { target, required, reports } = facts;
  const { action, digest, best } = aspect;
  const what = found(aspect, required);
  const message =
    `twokey: ${describeTarget(action, target)}${describeAfter(aspect.after)} refused: ${what}. ` +
    `Needed: ${whoMayApprove(facts)} and bound to digest ${digest}.${notCountedText(reports, facts.limit)}${notesText(aspect.notes ?? [])} ` +
    `To approve: twokey approve --action ${action} --digest ${digest} ..., then attach each token as annotation approval.twokey.dev/<approver>.`;
  return {
    allowed: false,
    action,
    target,
    aspects: [aspectVerdict(aspect)],
    digest,
    ...(best ? { change: best.change, approvers: best.approvers } : {}),
    summary: `refused: ${describeTarget(action, target)}${describeAfter(aspect.after)}: ${what}`,
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

/**
 * A request gated as several actions (an UPDATE that changes the spec and takes the protection
 * away) is admitted only when each aspect reached its own quorum. The refusal gives each aspect a
 * sentence of its own, "The <action> needs approvals bound to digest <digest>: <found>.", so that
 * the digest of each can be read from it.
 */
function severalAspectsVerdict(facts: QuorumFacts): Verdict {
  const { target, aspects, required, reports, now } = facts;
  const action = actionLabel(aspects);
  const notes = aspects.flatMap((a) => a.notes ?? []);
  const standing = (a: AspectFacts) =>
    a.admitted ? `approved for ${a.admitted.change} by ${a.admitted.approvers.join(', ')}` : found(a, required);
  const summary = aspects.map((a) => `${a.action} ${standing(a)}`).join('; ');
  const perAspect = Object.fromEntries(
    aspects.flatMap((a) => {
      const change = (a.admitted ?? a.best)?.change;
      return [
        [`${a.action}-digest`, a.digest],
        ...(change !== undefined ? [[`${a.action}-change`, change]] : []),
        ...(a.admitted ? [[`${a.action}-approvers`, a.admitted.approvers.join(',')]] : []),
      ];
    }),
  );
  const common = { action, target, aspects: aspects.map(aspectVerdict), approvals: reports };
  const lacking = aspects.filter((a) => a.admitted === undefined);
  if (lacking.length === 0) {
    return {
      ...common,
      allowed: true,
      summary: `admitted: ${describeTarget(action, target)}: ${summary}`,
      warnings: admissionWarnings(notes, reports, now),
      auditAnnotations: audit({ decision: 'admitted', action, ...perAspect }),
    };
  }
  const sentences = aspects
    .map((a) => {
      const state = a.admitted
        ? `approved for change ${quote(a.admitted.change)} by ${a.admitted.approvers.map((x) => quote(x)).join(', ')}`
        : found(a, required);
      return ` The ${a.action} needs approvals bound to digest ${a.digest}${describeAfter(a.after)}: ${state}.`;
    })
    .join('');
  const message =
    `twokey: ${describeTarget(action, target)} refused: this one request is ${aspects.map((a) => `${/^[aeiou]/.test(a.action) ? 'an' : 'a'} ${a.action}`).join(' and ')}, and each needs approvals of its own.${sentences} ` +
    `Needed for each: ${whoMayApprove(facts)} (the same approvers may approve each).${notCountedText(reports, facts.limit)}${notesText(notes)} ` +
    `To approve: ${lacking.map((a) => `twokey approve --action ${a.action} --digest ${a.digest} ...`).join(' and ')}, then attach each token as an annotation of its own, e.g. approval.twokey.dev/<approver>-<action>.`;
  return {
    ...common,
    allowed: false,
    summary: `refused: ${describeTarget(action, target)}: ${summary}`,
    message,
    warnings: [],
    auditAnnotations: audit({ decision: 'refused', action, ...perAspect }),
  };
}
