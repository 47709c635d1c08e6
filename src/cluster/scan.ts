/**
 * The audit: which critical workloads run a spec that no valid approvals cover. It finds what
 * changed while the webhook was down or failing open, and what was labelled critical after it
 * was deployed. Each workload's current spec is judged as a deploy, with the clock set to when
 * the spec last changed, so the approvals must have been valid then. It also finds workloads and
 * namespaces whose critical label is a look-alike ("True", "yes"), which protects nothing.
 */
import type { ConfigSnapshot } from '../config/store.ts';
import { decide } from '../decision/decide.ts';
import { NO_CLUSTER_VIEW } from '../decision/gate.ts';
import type { LookAlike } from '../decision/verdict.ts';
import { describeLookAlike, scanNamespaceDetail, scanWorkloadDetail } from '../decision/wording.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { toAdmissionRequest } from '../kubernetes/admission.ts';
import {
  criticalLabelLookAlike,
  hasCriticalLabel,
  NAMESPACES,
  ownerNames,
  qualifiedResource,
  readMeta,
  typeOfResource,
} from '../kubernetes/objects.ts';
import { buildAdmissionReview } from '../kubernetes/review-builder.ts';
import type { ClusterClient } from './client.ts';

/** The identity scans judge as: it is nobody's approver. */
export const SCAN_USER = 'system:twokey:scan';

export interface ScanRow {
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  /** "none": reported only for its look-alike label. */
  readonly criticalBy: 'label' | 'namespace label' | 'policy list' | 'none';
  /** A finding: unapproved, or mislabelled (a look-alike label; an unapproved one is reported as unapproved). */
  readonly status: 'approved' | 'unapproved' | 'protected' | 'mislabelled';
  readonly detail: string;
  /** The critical label's value when it is a look-alike of "true". */
  readonly criticalLabel?: string;
  readonly digest?: string;
  readonly change?: string;
  readonly approvers?: readonly string[];
  /** When the spec last changed, as the clock the approvals were judged at. */
  readonly specChangedAt?: string;
}

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

export async function scanCluster(client: ClusterClient, snapshot: ConfigSnapshot, now = Date.now() / 1000): Promise<ScanRow[]> {
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
    rows.push({
      ...base,
      ...(lookAlike ? { criticalLabel: lookAlike.value } : {}),
      status: verdict.allowed ? (lookAlike ? 'mislabelled' : 'approved') : 'unapproved',
      // An owner's deletion would have the garbage collector delete the workload, unapproved.
      detail: scanWorkloadDetail(verdict, ownerNames(meta), lookAlike),
    });
  }
  return rows.sort(
    (a, b) => a.resource.localeCompare(b.resource) || a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name),
  );
}
