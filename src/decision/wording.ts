/**
 * Every word a person reads about a verdict: the refusal message, the warnings, the one-line
 * summary of the log, the audit annotation values, the Event message and the scan's detail
 * column. The webhook, `twokey check`, the Events and the scan all say it through here, so they
 * say the same thing; the verdict itself (verdict.ts) holds facts only. What a check found wrong
 * with one token, and why the gate lets a request pass or cannot judge it, are worded where they
 * are found (approval.ts, gate.ts) and quoted here.
 */
import type { Action, ChangeTarget, UnprotectState } from '../change/digest.ts';
import { CRITICAL_LABEL, CRITICAL_VALUE, type OwnerName } from '../kubernetes/objects.ts';
import { printable, quote, truncate } from '../text.ts';
import {
  type ApprovalReport,
  type AspectVerdict,
  type BreakGlassReport,
  enforcedVerdict,
  type LookAlike,
  type QuorumGrounds,
  type Verdict,
} from './verdict.ts';

/** An approval report with the sentence that says how it fared. */
export interface WordedReport extends ApprovalReport {
  readonly detail: string;
}

/** What a verdict says. */
export interface VerdictWords {
  /** One line for logs: why this verdict. */
  readonly summary: string;
  /** The refusal message (status.message); starts with "twokey:". */
  readonly message?: string;
  readonly warnings: readonly string[];
  readonly auditAnnotations: Readonly<Record<string, string>>;
  readonly approvals: readonly WordedReport[];
}

/** A verdict and its words: what the webhook answers and `twokey check` prints. */
export interface Decision extends Omit<Verdict, 'approvals'>, VerdictWords {}

const WARNING_MAX = 120;
const MAX_WARNINGS = 10;
export const EXPIRY_WARNING_SECONDS = 600;
const OWNERS_NAMED = 5;

export function describeTarget(action: string, target: ChangeTarget): string {
  const where = target.namespace === '' ? target.name : `${target.namespace}/${target.name}`;
  return `${action} of ${target.resource} ${where}`;
}

/** Says that a look-alike of the critical label protects nothing, for a warning or a scan finding. */
export function describeLookAlike(lookAlike: LookAlike): string {
  return `label ${CRITICAL_LABEL} is ${quote(lookAlike.value, 20)}, not "${CRITICAL_VALUE}": it does not make this ${lookAlike.kind} critical`;
}

/** The owners as kind/name (at most three named), or undefined when there are none. */
export function describeOwners(owners: readonly OwnerName[]): string | undefined {
  if (owners.length === 0) return undefined;
  const named = owners.map((owner) => `${owner.kind ?? '?'}/${owner.name ?? '?'}`);
  return (named.length > 3 ? [...named.slice(0, 3), `${named.length - 3} more`] : named).join(', ');
}

/** The reason of a request twokey could not judge because of an error of its own. */
export function internalError(detail: string): string {
  return `internal error (${detail})`;
}

/** The reason of a request whose user cannot be told apart from an approver: not an identity, or not one the policy's identities map. */
export function unmappedUser(username: string, why: { readonly problem: string; readonly detail: string }): string {
  if (why.problem === 'invalid') {
    return `the requesting user ${quote(username)} is not a valid identity, so twokey cannot tell it apart from an approver`;
  }
  return `the requesting user ${quote(username)} ${why.detail}, so twokey cannot tell it apart from an approver (the policy's identities)`;
}

/** The user making the request as compared with approvers, and the name it was mapped from. */
function userNamed(grounds: QuorumGrounds | undefined): string {
  if (grounds === undefined) return '';
  return grounds.userFrom === undefined ? quote(grounds.user) : `${quote(grounds.user)} (from ${quote(grounds.userFrom, 256)})`;
}

/** Groups still short of approvals, e.g. `1 approval from group "sre"`. */
function missingGroups(missing: readonly { group: string; atLeast: number; have: number }[]): string {
  return missing
    .map(
      ({ group, atLeast, have }) =>
        `${atLeast - have} more approval${atLeast - have === 1 ? '' : 's'} from group ${quote(group)} (${have} of ${atLeast})`,
    )
    .join(', ');
}

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

/** Warnings kube-apiserver will pass on: printable, short, few (docs/kube-apiserver.md, "Warnings"). */
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

/** How one approval fared, in a sentence. */
function reportDetail(report: ApprovalReport, limit: number, grounds: QuorumGrounds | undefined): string {
  const approver = () => quote(report.approver ?? '');
  switch (report.code) {
    case undefined:
      return `approved by ${approver()} for ${quote(report.change ?? '')}`;
    case 'self':
      return grounds?.userFrom === undefined
        ? `approver ${approver()} is the user making this request`
        : `approver ${approver()} is the user making this request, ${userNamed(grounds)}, who cannot approve their own change`;
    case 'requester':
      return `approver ${approver()} requested change ${quote(report.change ?? '')}`;
    case 'duplicate':
      if (report.copyOf !== undefined) return `the same token as ${report.copyOf}`;
      return report.sameKey
        ? `countersigned with the approver key that countersigned ${report.countedAt}: one key is one person, whatever the sub`
        : `approver ${approver()} already counted (${report.countedAt})`;
    case 'other-change': {
      const decisive = report.verdictChange;
      return `approves change ${quote(report.change ?? '')}, not ${quote(decisive?.change ?? '')}${decisive?.admitted ? '' : ' (approvals of different change ids do not add up)'}`;
    }
    case 'limit':
      return `not read: only the first ${limit} distinct approval tokens are read`;
    default:
      return report.detail ?? report.code;
  }
}

/** What an aspect's approvals came to, e.g. `1 of 2 required approvals (change "CHG1": "bob")`. */
function found(aspect: AspectVerdict, required: number): string {
  const { change, approvers = [], missing = [] } = aspect;
  const count =
    change !== undefined
      ? `${approvers.length} of ${required} required approvals (change ${quote(change)}${approvers.length ? `: ${approvers.map((a) => quote(a)).join(', ')}` : ''})`
      : `0 of ${required} required approvals`;
  return missing.length > 0 ? `${count}; still missing: ${missingGroups(missing)}` : count;
}

/** What approvers should know about the object beyond its digest. */
function notesOf(verdict: Verdict): string[] {
  // The garbage collector deletes a workload when its owners are gone, and its deletes are exempt.
  const owners = describeOwners(verdict.owners ?? []);
  return owners ? [`owned by ${owners}: deleting an owner deletes this workload without delete approvals`] : [];
}

/** Warnings of an admitted request: notes, approvals about to expire, and those that did not count. */
function admissionWarnings(notes: readonly string[], reports: readonly WordedReport[], now: number): string[] {
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

/**
 * Why approvals did not count. Every token read (at most the limit) gets its reason; copies of
 * them and unread annotations are summarised, so the message stays bounded however many
 * annotations there are.
 */
function notCountedText(reports: readonly WordedReport[], limit: number): string {
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

function whoMayApprove(grounds: QuorumGrounds): string {
  return (
    `${grounds.required} approvals of one change id from distinct approvers who are neither ${userNamed(grounds)} (making this request) nor the change's requester, ` +
    (grounds.groups?.length ? `at least ${grounds.groups.map((g) => `${g.atLeast} from group ${quote(g.group)}`).join(' and ')}, ` : '') +
    `each signed by a trusted change system for cluster ${quote(grounds.cluster)}`
  );
}

/** How each aspect of a request gated as several actions stands, for the summary. */
function aspectsSummary(aspects: readonly AspectVerdict[], required: number): string {
  const standing = (a: AspectVerdict) => (a.allowed ? `approved for ${a.change} by ${a.approvers?.join(', ')}` : found(a, required));
  return aspects.map((a) => `${a.action} ${standing(a)}`).join('; ');
}

/** What the summary says after "admitted: " of a request admitted with approvals. */
function admittedSummary(verdict: Verdict, target: ChangeTarget, required: number): string {
  const action = verdict.action ?? '';
  const [only, ...more] = verdict.aspects;
  if (only === undefined || more.length > 0) return `${describeTarget(action, target)}: ${aspectsSummary(verdict.aspects, required)}`;
  return `${describeTarget(action, target)}${describeAfter(only.after)} approved for ${only.change} by ${only.approvers?.join(', ')}`;
}

/** What the summary says after "refused: " of a request short of approvals. */
function refusedSummary(verdict: Verdict, target: ChangeTarget, required: number): string {
  const action = verdict.action ?? '';
  const [only, ...more] = verdict.aspects;
  if (only === undefined || more.length > 0) return `${describeTarget(action, target)}: ${aspectsSummary(verdict.aspects, required)}`;
  return `${describeTarget(action, target)}${describeAfter(only.after)}: ${found(only, required)}`;
}

/** The words of a request judged by its quorum. */
function quorumWords(verdict: Verdict, grounds: QuorumGrounds, approvals: readonly WordedReport[]): Omit<VerdictWords, 'approvals'> {
  // A verdict judged by its quorum always names its target (verdict.ts, quorumVerdict).
  const target = verdict.target as ChangeTarget;
  const action = verdict.action ?? '';
  const { required, limit, now } = grounds;
  const notes = notesOf(verdict);
  const [only, ...more] = verdict.aspects;
  if (only !== undefined && more.length === 0) {
    if (verdict.allowed) {
      return {
        summary: `admitted: ${admittedSummary(verdict, target, required)}`,
        warnings: admissionWarnings(notes, approvals, now),
        auditAnnotations: audit({
          decision: 'admitted',
          action,
          change: only.change,
          approvers: only.approvers?.join(','),
          digest: only.digest,
          plan: only.plans?.join(','),
        }),
      };
    }
    const message =
      `twokey: ${describeTarget(action, target)}${describeAfter(only.after)} refused: ${found(only, required)}. ` +
      `Needed: ${whoMayApprove(grounds)} and bound to digest ${only.digest}.${notCountedText(approvals, limit)}${breakGlassNotCounted(verdict.breakGlass)}${notesText(notes)} ` +
      `To approve: twokey approve --action ${action} --digest ${only.digest} ..., then attach each token as annotation approval.twokey.dev/<approver>.`;
    return {
      summary: `refused: ${refusedSummary(verdict, target, required)}`,
      message,
      warnings: [],
      auditAnnotations: audit({
        decision: 'refused',
        action,
        digest: only.digest,
        ...(only.change !== undefined ? { change: only.change } : {}),
      }),
    };
  }
  // Several aspects: each needs a quorum of its own, and the refusal gives each a sentence of its
  // own, "The <action> needs approvals bound to digest <digest>: <found>.", so that the digest of
  // each can be read from it (wording.ts's digestFromRefusal reads it so).
  const aspects = verdict.aspects;
  const perAspect = Object.fromEntries(
    aspects.flatMap((a) => [
      [`${a.action}-digest`, a.digest],
      ...(a.change !== undefined ? [[`${a.action}-change`, a.change]] : []),
      ...(a.allowed ? [[`${a.action}-approvers`, a.approvers?.join(',')]] : []),
      ...(a.plans ? [[`${a.action}-plan`, a.plans.join(',')]] : []),
    ]),
  );
  if (verdict.allowed) {
    return {
      summary: `admitted: ${admittedSummary(verdict, target, required)}`,
      warnings: admissionWarnings(notes, approvals, now),
      auditAnnotations: audit({ decision: 'admitted', action, ...perAspect }),
    };
  }
  const lacking = aspects.filter((a) => !a.allowed);
  const sentences = aspects
    .map((a) => {
      const state = a.allowed
        ? `approved for change ${quote(a.change ?? '')} by ${(a.approvers ?? []).map((x) => quote(x)).join(', ')}`
        : found(a, required);
      return ` The ${a.action} needs approvals bound to digest ${a.digest}${describeAfter(a.after)}: ${state}.`;
    })
    .join('');
  const message =
    `twokey: ${describeTarget(action, target)} refused: this one request is ${aspects.map((a) => `${/^[aeiou]/.test(a.action) ? 'an' : 'a'} ${a.action}`).join(' and ')}, and each needs approvals of its own.${sentences} ` +
    `Needed for each: ${whoMayApprove(grounds)} (the same approvers may approve each).${notCountedText(approvals, limit)}${breakGlassNotCounted(verdict.breakGlass)}${notesText(notes)} ` +
    `To approve: ${lacking.map((a) => `twokey approve --action ${a.action} --digest ${a.digest} ...`).join(' and ')}, then attach each token as an annotation of its own, e.g. approval.twokey.dev/<approver>-<action>.`;
  return {
    summary: `refused: ${refusedSummary(verdict, target, required)}`,
    message,
    warnings: [],
    auditAnnotations: audit({ decision: 'refused', action, ...perAspect }),
  };
}

/** The warning that tells `twokey plan --server` one aspect's digest; planLine reads it back. */
function planWarning(action: string, target: ChangeTarget, digest: string): string {
  const where = target.namespace === '' ? target.name : `${target.namespace}/${target.name}`;
  return `twokey plan: ${action} ${target.resource} ${printable(where)} ${digest}`;
}

const PLAN_LINE = /^twokey plan: (deploy|delete|unprotect) (\S+) (\S+) (sha256:[0-9a-f]{64})$/;

/** An aspect's digest as a planned dry run's warning tells it, or undefined for another warning. */
export function planLine(warning: string): { action: Action; resource: string; where: string; digest: string } | undefined {
  const match = PLAN_LINE.exec(warning);
  if (!match) return undefined;
  const [, action, resource, where, digest] = match as unknown as [string, Action, string, string, string];
  return { action, resource, where, digest };
}

/**
 * The words of a planned dry run: one warning per aspect with its digest. They are not cut to the
 * usual warning length: a digest cut short is no digest, and one object has at most two aspects.
 */
function plannedWords(verdict: Verdict): Omit<VerdictWords, 'approvals'> {
  const target = verdict.target as ChangeTarget;
  const action = verdict.action ?? '';
  return {
    summary: `planned: dry run of the ${describeTarget(action, target)} with the plan marker (${verdict.aspects.map((a) => `${a.action} ${a.digest}`).join(', ')})`,
    warnings: verdict.aspects.map((a) => planWarning(a.action, target, a.digest)),
    auditAnnotations: audit({
      decision: 'planned',
      action,
      ...Object.fromEntries(verdict.aspects.map((a) => [verdict.aspects.length === 1 ? 'digest' : `${a.action}-digest`, a.digest])),
    }),
  };
}

/** Seconds since the epoch as an RFC 3339 time, to the second. */
function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Why the break-glass token on the object did not let a refused request through, as a sentence of the refusal. */
function breakGlassNotCounted(report: BreakGlassReport | undefined): string {
  if (report === undefined || report.status === 'counted') return '';
  const why =
    report.code === 'self'
      ? `its approver ${quote(report.approver ?? '')} is the user making this request`
      : report.code === 'requester'
        ? `its approver ${quote(report.approver ?? '')} is the requester it names`
        : truncate(printable(report.detail ?? report.code ?? ''), 300);
  return ` The break-glass token (${report.key}) did not count: ${why}.`;
}

/** Who broke the glass, for which incident: `incident "INC-123" by "dave"`. */
function breakGlassWho(report: BreakGlassReport): string {
  return `incident ${quote(report.incident ?? '', 64)} by ${quote(report.approver ?? '', 64)}`;
}

/** The words of a request let through by a break-glass token: loud everywhere. */
function breakGlassWords(verdict: Verdict, report: BreakGlassReport, approvals: readonly WordedReport[]): Omit<VerdictWords, 'approvals'> {
  const target = verdict.target as ChangeTarget;
  const action = verdict.action ?? '';
  const due = isoTime(report.reviewBy ?? 0);
  const digests =
    verdict.aspects.length === 1
      ? { digest: verdict.aspects[0]?.digest }
      : Object.fromEntries(verdict.aspects.map((a) => [`${a.action}-digest`, a.digest]));
  const notes = notesOf(verdict).map((note) => `twokey: ${note}`);
  const notCounted = approvals.filter((r) => r.status !== 'counted').map((r) => `twokey: ${r.key} did not count: ${r.detail}`);
  return {
    summary: `admitted by break-glass: ${describeTarget(action, target)} for ${breakGlassWho(report)}; two approvals of this state are due by ${due}`,
    warnings: warningLines([
      `twokey: BREAK-GLASS: admitted without two approvals, for ${breakGlassWho(report)}`,
      `twokey: two approvals of this state are due by ${due}; twokey scan reports it until then`,
      ...notes,
      ...notCounted,
    ]),
    auditAnnotations: audit({
      decision: 'admitted',
      action,
      ...digests,
      'break-glass': report.incident,
      'break-glass-approver': report.approver,
      'break-glass-review-by': due,
    }),
  };
}

/** The refusal enforce mode would give a request warn mode admitted, without its "twokey: ". */
export function wouldRefuseText(verdict: Verdict): string {
  const refused = wordVerdict(enforcedVerdict(verdict));
  return (refused.message ?? refused.summary).replace(/^twokey: /, '');
}

/** The words of a refusal admitted in warn mode: what would have been refused, said wherever it is recorded. */
function warnModeWords(verdict: Verdict): Omit<VerdictWords, 'approvals'> {
  const refused = wordVerdict(enforcedVerdict(verdict));
  const short = refused.summary.replace(/^refused: /, '');
  const { decision: _, ...facts } = refused.auditAnnotations;
  return {
    summary: `admitted in warn mode: would refuse: ${short}`,
    warnings: warningLines([`twokey (warn mode): would refuse: ${short}`]),
    auditAnnotations: audit({ decision: 'admitted', mode: 'warn', 'would-refuse': wouldRefuseText(verdict), ...facts }),
  };
}

/** The words of a verdict. */
export function wordVerdict(verdict: Verdict): Decision {
  const { grounds } = verdict;
  const limit = grounds.kind === 'quorum' ? grounds.limit : 0;
  const quorum = grounds.kind === 'quorum' ? grounds : undefined;
  const approvals =
    verdict.approvals.length === 0
      ? []
      : verdict.approvals.map((report): WordedReport => ({ ...report, detail: reportDetail(report, limit, quorum) }));
  let words: Omit<VerdictWords, 'approvals'>;
  switch (grounds.kind) {
    case 'not-gated':
      words = { summary: `not gated: ${grounds.why}`, warnings: [], auditAnnotations: {} };
      break;
    case 'cannot-judge': {
      if (verdict.wouldRefuse !== undefined) {
        words = warnModeWords(verdict);
        break;
      }
      const what = verdict.target
        ? `cannot judge the ${describeTarget(verdict.action ?? '', verdict.target)}`
        : 'cannot judge this request';
      words = {
        summary: `refused: ${grounds.why}`,
        message: `twokey: ${what}: ${printable(grounds.why)}. twokey refuses what it cannot judge on a critical object; fix the cause and retry.`,
        warnings: [],
        auditAnnotations: audit({ decision: 'refused', action: verdict.action, reason: grounds.why }),
      };
      break;
    }
    case 'planned':
      words = plannedWords(verdict);
      break;
    case 'quorum':
      words =
        verdict.wouldRefuse !== undefined
          ? warnModeWords(verdict)
          : verdict.allowed && verdict.breakGlass?.status === 'counted'
            ? breakGlassWords(verdict, verdict.breakGlass, approvals)
            : quorumWords(verdict, grounds, approvals);
      break;
  }
  // Told whatever the verdict, which it never changes: the label is what was meant to protect the object.
  const lookAlike = verdict.lookAlike ? [`twokey: ${describeLookAlike(verdict.lookAlike)}`] : [];
  const warnings =
    lookAlike.length === 0
      ? words.warnings
      : grounds.kind === 'planned'
        ? [...warningLines(lookAlike), ...words.warnings]
        : warningLines([...lookAlike, ...words.warnings]);
  return { ...verdict, ...words, warnings, approvals };
}

/** The message of the Kubernetes Event about a decision: the refusal, or who approved which change. */
export function eventMessage(verdict: Verdict): string {
  const { grounds } = verdict;
  if (verdict.wouldRefuse !== undefined) return `twokey (warn mode): would refuse: ${wouldRefuseText(verdict)}`;
  if (verdict.allowed && verdict.breakGlass?.status === 'counted') {
    const report = verdict.breakGlass;
    const digests = verdict.aspects.map((a) => `${a.action} ${a.digest}`).join(', ');
    return (
      `twokey: BREAK-GLASS: ${describeTarget(verdict.action ?? '', verdict.target as ChangeTarget)} admitted without two approvals, ` +
      `for ${breakGlassWho(report)} (${digests}); two approvals of this state are due by ${isoTime(report.reviewBy ?? 0)}`
    );
  }
  if (!verdict.allowed) {
    const words = wordVerdict(verdict);
    return words.message ?? words.summary;
  }
  const digests =
    verdict.aspects.length <= 1
      ? `digest ${verdict.digest ?? verdict.aspects[0]?.digest ?? ''}`
      : `digests ${verdict.aspects.map((a) => `${a.action} ${a.digest}`).join(', ')}`;
  const admitted =
    grounds.kind === 'quorum' && verdict.target !== undefined
      ? admittedSummary(verdict, verdict.target, grounds.required)
      : wordVerdict(verdict).summary;
  return `twokey: ${admitted} (${digests})`;
}

/** The scan's detail for a critical or mislabelled namespace. */
export function scanNamespaceDetail(critical: boolean, lookAlike: LookAlike | undefined): string {
  const protectedDetail = 'deletion and unlabelling need approvals';
  if (!lookAlike) return protectedDetail;
  return critical ? `${describeLookAlike(lookAlike)}; ${protectedDetail}` : describeLookAlike(lookAlike);
}

/**
 * The scan's detail for a critical workload, judged as a deploy of its current spec: who approved
 * it, or what its approvals came to and which did not count; and that deleting an owner deletes it
 * without approvals.
 */
export function scanWorkloadDetail(verdict: Verdict, owners: readonly OwnerName[], lookAlike: LookAlike | undefined): string {
  if (verdict.wouldRefuse !== undefined)
    return `admitted in warn mode, enforce mode would refuse: ${scanWorkloadDetail(enforcedVerdict(verdict), owners, lookAlike)}`;
  const named = describeOwners(owners);
  const ownedBy = named ? `; owned by ${named}, whose deletion deletes it without approvals` : '';
  const mislabelled = lookAlike ? `${describeLookAlike(lookAlike)}; ` : '';
  if (verdict.allowed) return `${mislabelled}${verdict.change} approved by ${verdict.approvers?.join(', ')}${ownedBy}`;
  const { grounds } = verdict;
  const judged =
    grounds.kind === 'planned'
      ? 'planned'
      : grounds.kind !== 'quorum'
        ? grounds.why
        : verdict.target
          ? unapprovedFinding(verdict, verdict.target, grounds.required)
          : '';
  const reasons = verdict.approvals.filter((a) => a.status !== 'counted').map((a) => `${a.key} (${a.code})`);
  return `${mislabelled}${reasons.length > 0 ? `${judged}; not counted: ${reasons.join(', ')}` : judged}${ownedBy}`;
}

/**
 * The scan's detail for a workload whose current state a break-glass token let through: the
 * incident, and whether two approvals of that state followed within the review window.
 */
export function scanBreakGlassDetail(report: BreakGlassReport, review: Verdict, now: number): string {
  const admitted = `admitted by break-glass for ${breakGlassWho(report)} at ${isoTime(report.issuedAt ?? 0)}`;
  if (review.allowed) return `${admitted}; reviewed: ${review.change} approved by ${review.approvers?.join(', ')}`;
  const due = report.reviewBy ?? 0;
  const so =
    review.target && review.grounds.kind === 'quorum'
      ? `; so far ${unapprovedFinding(review, review.target, review.grounds.required)}`
      : '';
  return `${admitted} without two approvals; two approvals of its current state ${now <= due ? 'are' : 'were'} due by ${isoTime(due)}${so}`;
}

/** The scan's detail for a WouldRefuse Event: how often, when last, and what enforce mode would have said. */
export function scanEventDetail(count: number, last: string, message: string): string {
  return `${count} ${count === 1 ? 'request' : 'requests'} admitted in warn mode, the last at ${printable(last)}: ${truncate(printable(message), 400)}`;
}

/** What a refused request's approvals came to, as the summary says it, without naming the change of a single deploy or delete. */
function unapprovedFinding(verdict: Verdict, target: ChangeTarget, required: number): string {
  const [only, ...more] = verdict.aspects;
  if (only === undefined || more.length > 0 || only.after !== undefined) return refusedSummary(verdict, target, required);
  return found(only, required);
}

/**
 * The digest a twokey refusal names as the one to approve; with an action, the digest of that
 * aspect. A refusal of one action names one digest; a refusal of several ("deploy+unprotect of")
 * names each in a sentence of its own, "The <action> needs approvals bound to digest <digest>".
 * Untrusted values in a refusal are quoted and cut to 64 characters, too short to hold a digest.
 * This reads a refusal that came back through a cluster, where the words are all there is.
 */
export function digestFromRefusal(message: string, action?: Action): string | undefined {
  const judged = /twokey: ([a-z+]+) of /.exec(message)?.[1];
  if (action === undefined || judged === action) return /bound to digest (sha256:[0-9a-f]{64})/.exec(message)?.[1];
  if (!judged?.split('+').includes(action)) return undefined;
  return new RegExp(`The ${action} needs approvals bound to digest (sha256:[0-9a-f]{64})`).exec(message)?.[1];
}
