/**
 * The audit: which critical workloads run a spec that no valid approvals cover. It finds what
 * changed while the webhook was down or failing open, and what was labelled critical after it
 * was deployed. Each workload's current spec is judged as a deploy, with the clock set to when
 * the spec last changed, so the approvals must have been valid then. It also finds workloads and
 * namespaces whose critical label is a look-alike ("True", "yes"), which protects nothing.
 *
 * In warn mode it reports what enforce mode would refuse: live workloads judged so, and the
 * WouldRefuse Events the webhook recorded (past requests, deletes included, for as long as the
 * cluster keeps Events). A workload whose current state a break-glass token let through is a
 * finding until two ordinary approvals of that state follow, and says when they were due.
 */
import type { ConfigSnapshot } from '../config/store.ts';
import { decide } from '../decision/decide.ts';
import { NO_CLUSTER_VIEW } from '../decision/gate.ts';
import type { BreakGlassReport, LookAlike } from '../decision/verdict.ts';
import {
  type Decision,
  describeLookAlike,
  scanBreakGlassDetail,
  scanEventDetail,
  scanNamespaceDetail,
  scanWorkloadDetail,
} from '../decision/wording.ts';
import { describeError } from '../errors.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { toAdmissionRequest } from '../kubernetes/admission.ts';
import {
  approvalAnnotations,
  BREAK_GLASS_ANNOTATION,
  criticalLabelLookAlike,
  hasCriticalLabel,
  NAMESPACES,
  ownerNames,
  qualifiedResource,
  readMeta,
  resourceForKind,
  typeOfResource,
} from '../kubernetes/objects.ts';
import { buildAdmissionReview } from '../kubernetes/review-builder.ts';
import { parseToken } from '../token/jws.ts';
import type { ClusterClient } from './client.ts';

/** The identity scans judge as: it is nobody's approver. */
export const SCAN_USER = 'system:twokey:scan';

export interface ScanRow {
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  /** "none": reported only for its look-alike label; "event": a past request, from a WouldRefuse Event. */
  readonly criticalBy: 'label' | 'namespace label' | 'policy list' | 'none' | 'event';
  /**
   * A finding: unapproved; mislabelled (a look-alike label; an unapproved one is reported as
   * unapproved); would-refuse (admitted in warn mode); break-glass (admitted by a break-glass token,
   * two approvals of its current state still due) or break-glass-overdue (and not within the window).
   */
  readonly status: 'approved' | 'unapproved' | 'protected' | 'mislabelled' | 'would-refuse' | 'break-glass' | 'break-glass-overdue';
  readonly detail: string;
  /** The critical label's value when it is a look-alike of "true". */
  readonly criticalLabel?: string;
  readonly digest?: string;
  readonly change?: string;
  readonly approvers?: readonly string[];
  /** When the spec last changed, as the clock the approvals were judged at. */
  readonly specChangedAt?: string;
  /** For a workload a break-glass token let through: the incident, and when two approvals were due. */
  readonly incident?: string;
  readonly reviewBy?: string;
}

/** The statuses that are findings (the scan exits 1 when any row has one). */
export const FINDINGS: ReadonlySet<ScanRow['status']> = new Set([
  'unapproved',
  'mislabelled',
  'would-refuse',
  'break-glass',
  'break-glass-overdue',
]);

const isoTime = (seconds: number) => new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * When the spec last changed: the latest managedFields entry of the main resource that owns
 * fields under spec, else the creation time.
 */
export function lastSpecChange(object: JsonObject): number | undefined {
  const metadata = isJsonObject(object.metadata) ? object.metadata : {};
  const times: number[] = [];
  for (const entry of Array.isArray(metadata.managedFields) ? metadata.managedFields : []) {
    if (!isJsonObject(entry) || entry.subresource || !isJsonObject(entry.fieldsV1) || !('f:spec' in entry.fieldsV1)) continue;
    const time = typeof entry.time === 'string' ? Date.parse(entry.time) : Number.NaN;
    if (!Number.isNaN(time)) times.push(time / 1000);
  }
  if (times.length > 0) return Math.max(...times);
  const created = typeof metadata.creationTimestamp === 'string' ? Date.parse(metadata.creationTimestamp) : Number.NaN;
  return Number.isNaN(created) ? undefined : created / 1000;
}

/** A look-alike critical label: its value, and the kind of the object it is on. */
function lookAlikeOf(labels: Readonly<Record<string, string>>, kind: string): LookAlike | undefined {
  const value = criticalLabelLookAlike(labels);
  return value === undefined ? undefined : { value, kind };
}

/** The claimed issue time of each approval annotation on the object, read without verifying (undefined when none can be read). */
function approvalTimes(object: JsonObject, maxBytes: number): Array<{ key: string; iat: number | undefined }> {
  return approvalAnnotations(readMeta(object)).map(({ key, value }) => {
    const token = parseToken(value, maxBytes);
    const payload = token.ok ? token.payload() : undefined;
    const iat = payload?.ok ? payload.value.iat : undefined;
    return { key, iat: typeof iat === 'number' && Number.isFinite(iat) ? iat : undefined };
  });
}

/**
 * Whether two ordinary approvals of the workload's current state followed the break-glass token
 * within the review window: judged without the token and with only the approvals that say they were
 * issued in the window (a counted approval's signature vouches for that), at the issue time of the
 * latest of them, else at the end of the window. An approval issued before the token is no review
 * of what it let through, however long it stays valid.
 */
async function reviewOf(object: JsonObject, report: BreakGlassReport, snapshot: ConfigSnapshot, now: number): Promise<Decision> {
  const from = report.issuedAt ?? 0;
  const until = Math.min(now, report.reviewBy ?? 0);
  const without = structuredClone(object);
  const annotations = (without.metadata as JsonObject).annotations as JsonObject;
  delete annotations[BREAK_GLASS_ANNOTATION];
  const times: number[] = [];
  for (const { key, iat } of approvalTimes(object, snapshot.policy.maxTokenBytes)) {
    if (iat !== undefined && iat >= from && iat <= until) times.push(iat);
    else delete annotations[key];
  }
  return decide(toAdmissionRequest(buildAdmissionReview({ operation: 'CREATE', object: without, username: SCAN_USER })), {
    ...snapshot,
    policy: { ...snapshot.policy, mode: 'enforce', warnNamespaces: new Set() },
    namespaces: NO_CLUSTER_VIEW,
    forceCritical: true,
    now: times.length > 0 ? Math.max(...times) : until,
  });
}

/** Past requests warn mode admitted, as the webhook's WouldRefuse Events tell them. */
async function wouldRefuseEvents(client: ClusterClient, warn: (message: string) => void): Promise<ScanRow[]> {
  let events: JsonObject[];
  try {
    events = await client.listEvents('WouldRefuse');
  } catch (error) {
    warn(`the WouldRefuse Events cannot be read, so past requests admitted in warn mode are not shown: ${describeError(error)}`);
    return [];
  }
  return events.flatMap((event): ScanRow[] => {
    const involved = isJsonObject(event.involvedObject) ? event.involvedObject : {};
    const gr = resourceForKind(String(involved.apiVersion ?? ''), String(involved.kind ?? ''));
    const source = isJsonObject(event.source) ? event.source : {};
    if (gr === undefined || source.component !== 'twokey') return [];
    const last = String(event.lastTimestamp ?? event.eventTime ?? '');
    const count = typeof event.count === 'number' ? event.count : 1;
    return [
      {
        resource: qualifiedResource(gr),
        namespace: String(involved.namespace ?? ''),
        name: String(involved.name ?? ''),
        criticalBy: 'event',
        status: 'would-refuse',
        detail: scanEventDetail(count, last, String(event.message ?? '')),
      },
    ];
  });
}

export interface ScanOptions {
  /** Seconds since the epoch. */
  readonly now?: number;
  /** Told when something the scan would show cannot be read. */
  readonly warn?: (message: string) => void;
}

export async function scanCluster(client: ClusterClient, snapshot: ConfigSnapshot, options: ScanOptions = {}): Promise<ScanRow[]> {
  const now = options.now ?? Date.now() / 1000;
  const { policy } = snapshot;
  // The scan judges as no user in particular: the policy's identities, which map a requesting user, do not apply.
  const { identities: _user, ...scanPolicy } = policy;
  const [namespaces, workloads] = await Promise.all([client.listNamespaces(), client.listWorkloads()]);
  const rows: ScanRow[] = [];
  const criticalNamespaces = new Map<string, ScanRow['criticalBy']>();
  for (const ns of namespaces) {
    const meta = readMeta(ns);
    const by = hasCriticalLabel(meta.labels) ? 'namespace label' : policy.criticalNamespaces.has(meta.name) ? 'policy list' : undefined;
    const lookAlike = lookAlikeOf(meta.labels, NAMESPACES.kind);
    if (by) criticalNamespaces.set(meta.name, by);
    else if (!lookAlike) continue;
    rows.push({
      resource: 'namespaces',
      namespace: '',
      name: meta.name,
      criticalBy: by === 'namespace label' ? 'label' : (by ?? 'none'),
      status: lookAlike ? 'mislabelled' : 'protected',
      detail: scanNamespaceDetail(by !== undefined, lookAlike),
      ...(lookAlike ? { criticalLabel: lookAlike.value } : {}),
    });
  }
  for (const { resource, object } of workloads) {
    const meta = readMeta(object);
    const criticalBy = hasCriticalLabel(meta.labels) ? 'label' : criticalNamespaces.get(meta.namespace);
    const lookAlike = lookAlikeOf(meta.labels, typeOfResource(resource)?.kind ?? 'workload');
    const where = { resource: qualifiedResource(resource), namespace: meta.namespace, name: meta.name };
    if (!criticalBy) {
      if (lookAlike)
        rows.push({
          ...where,
          criticalBy: 'none',
          status: 'mislabelled',
          detail: describeLookAlike(lookAlike),
          criticalLabel: lookAlike.value,
        });
      continue;
    }
    const changedAt = lastSpecChange(object) ?? now;
    const verdict = await decide(toAdmissionRequest(buildAdmissionReview({ operation: 'CREATE', object, username: SCAN_USER })), {
      ...snapshot,
      policy: scanPolicy,
      namespaces: NO_CLUSTER_VIEW,
      forceCritical: true,
      now: changedAt,
    });
    const base = {
      ...where,
      criticalBy,
      specChangedAt: new Date(changedAt * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      ...(verdict.digest ? { digest: verdict.digest } : {}),
      ...(verdict.change ? { change: verdict.change } : {}),
      ...(verdict.approvers ? { approvers: verdict.approvers } : {}),
    };
    const label = lookAlike ? { criticalLabel: lookAlike.value } : {};
    const report = verdict.breakGlass;
    if (verdict.allowed && verdict.wouldRefuse === undefined && report?.status === 'counted') {
      const review = await reviewOf(object, report, snapshot, now);
      const status = review.allowed ? 'approved' : now <= (report.reviewBy ?? 0) ? 'break-glass' : 'break-glass-overdue';
      rows.push({
        ...base,
        ...label,
        ...(review.allowed ? { change: review.change, approvers: review.approvers } : {}),
        status,
        incident: report.incident ?? '',
        reviewBy: isoTime(report.reviewBy ?? 0),
        detail: scanBreakGlassDetail(report, review, now),
      });
      continue;
    }
    rows.push({
      ...base,
      ...label,
      status:
        verdict.wouldRefuse !== undefined ? 'would-refuse' : verdict.allowed ? (lookAlike ? 'mislabelled' : 'approved') : 'unapproved',
      // An owner's deletion would have the garbage collector delete the workload, unapproved.
      detail: scanWorkloadDetail(verdict, ownerNames(meta), lookAlike),
    });
  }
  if (policy.mode === 'warn' || policy.warnNamespaces.size > 0) rows.push(...(await wouldRefuseEvents(client, options.warn ?? (() => {}))));
  return rows.sort(
    (a, b) => a.resource.localeCompare(b.resource) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name),
  );
}
