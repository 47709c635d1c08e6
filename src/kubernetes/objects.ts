/**
 * The slice of the Kubernetes object model twokey reads: resource identities, labels, metadata.
 * Objects arrive as untrusted JSON; accessors validate what they read and say what was wrong.
 */
import { isJsonObject, type JsonObject } from '../json.ts';

export const CRITICAL_LABEL = 'twokey.dev/critical';
export const CRITICAL_VALUE = 'true';
export const APPROVAL_ANNOTATION_PREFIX = 'approval.twokey.dev/';
/**
 * The plan marker: a server-side dry run of a gated object carrying this annotation is admitted
 * with each aspect's digest as a warning (`twokey plan --server`); a real write is judged as usual.
 */
export const PLAN_MARKER_ANNOTATION = 'twokey.dev/plan';
/** The annotation that carries a break-glass token (README, "Break-glass"). */
export const BREAK_GLASS_ANNOTATION = 'twokey.dev/break-glass';

export interface GroupResource {
  readonly group: string;
  readonly resource: string;
}

/** `<plural>.<group>`, or the plural alone for the core group: the R of a change subject. */
export function qualifiedResource(gr: GroupResource): string {
  return gr.group === '' ? gr.resource : `${gr.resource}.${gr.group}`;
}

/** The workloads whose deploys and deletes are gated, by kind as written in manifests. */
export const WORKLOADS = [
  { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Deployment' },
  {
    group: 'apps',
    version: 'v1',
    resource: 'statefulsets',
    kind: 'StatefulSet',
  },
  { group: 'apps', version: 'v1', resource: 'daemonsets', kind: 'DaemonSet' },
  { group: 'batch', version: 'v1', resource: 'cronjobs', kind: 'CronJob' },
] as const;

export const NAMESPACES = {
  group: '',
  version: 'v1',
  resource: 'namespaces',
  kind: 'Namespace',
} as const;

/** Group, version and kind of a gated resource, as kube-apiserver names them in a review. */
export function typeOfResource(gr: GroupResource): { group: string; version: string; resource: string; kind: string } | undefined {
  if (gr.group === NAMESPACES.group && gr.resource === NAMESPACES.resource) return NAMESPACES;
  return WORKLOADS.find((w) => w.group === gr.group && w.resource === gr.resource);
}

export type GatedResourceKind = 'workload' | 'namespace';

export function classifyResource(gr: GroupResource): GatedResourceKind | undefined {
  const type = typeOfResource(gr);
  if (type === undefined) return undefined;
  return type === NAMESPACES ? 'namespace' : 'workload';
}

/** Maps a manifest's apiVersion/kind to its resource, for objects read from files. */
export function resourceForKind(apiVersion: string, kind: string): GroupResource | undefined {
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : '';
  if (kind === NAMESPACES.kind && group === '') return { group: NAMESPACES.group, resource: NAMESPACES.resource };
  const workload = WORKLOADS.find((w) => w.kind === kind && w.group === group);
  return workload ? { group: workload.group, resource: workload.resource } : undefined;
}

/** Metadata of an object, validated. */
export interface ObjectMeta {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** The owners whose deletion makes the garbage collector delete this object. */
  readonly ownerReferences: readonly unknown[];
  /** Set once the object's deletion has begun (finalizers pending); "" otherwise. */
  readonly deletionTimestamp: string;
}

export class MalformedObjectError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MalformedObjectError';
  }
}

function stringMap(value: unknown, field: string): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (!isJsonObject(value)) throw new MalformedObjectError(`${field} is not a map of strings`);
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry !== 'string') {
      throw new MalformedObjectError(`${field}[${JSON.stringify(key)}] is not a string`);
    }
  }
  return value as Record<string, string>;
}

function optionalString(value: unknown, field: string): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') throw new MalformedObjectError(`${field} is not a string`);
  return value;
}

function ownerReferences(value: unknown): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new MalformedObjectError('metadata.ownerReferences is not a list');
  return value;
}

/** Reads and validates `metadata`; throws MalformedObjectError naming the bad field. */
export function readMeta(object: JsonObject): ObjectMeta {
  const metadata = object.metadata;
  if (metadata === undefined || metadata === null) {
    return { name: '', namespace: '', uid: '', labels: {}, annotations: {}, ownerReferences: [], deletionTimestamp: '' };
  }
  if (!isJsonObject(metadata)) throw new MalformedObjectError('metadata is not an object');
  return {
    name: optionalString(metadata.name, 'metadata.name'),
    namespace: optionalString(metadata.namespace, 'metadata.namespace'),
    uid: optionalString(metadata.uid, 'metadata.uid'),
    labels: stringMap(metadata.labels, 'metadata.labels'),
    annotations: stringMap(metadata.annotations, 'metadata.annotations'),
    ownerReferences: ownerReferences(metadata.ownerReferences),
    deletionTimestamp: optionalString(metadata.deletionTimestamp, 'metadata.deletionTimestamp'),
  };
}

/** An owner as the garbage collector resolves it: these four fields name the object it waits for. */
export interface OwnerIdentity {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
}

const OWNER_FIELDS = ['apiVersion', 'kind', 'name', 'uid'] as const;

/** The owners' identities; throws MalformedObjectError naming an entry that lacks one of them as a string. */
export function ownerIdentities(meta: ObjectMeta): OwnerIdentity[] {
  return meta.ownerReferences.map((owner, index) => {
    const at = `metadata.ownerReferences[${index}]`;
    if (!isJsonObject(owner)) throw new MalformedObjectError(`${at} is not an object`);
    for (const field of OWNER_FIELDS) {
      if (typeof owner[field] !== 'string') {
        throw new MalformedObjectError(`${at}.${field} is ${owner[field] === undefined ? 'missing' : 'not a string'}`);
      }
    }
    const { apiVersion, kind, name, uid } = owner as Record<(typeof OWNER_FIELDS)[number], string>;
    return { apiVersion, kind, name, uid };
  });
}

/** An owner as named in the object, for people: kind and name, where they are strings. */
export interface OwnerName {
  readonly kind?: string;
  readonly name?: string;
}

/** The owners' kinds and names, however malformed the entries (they are only shown). */
export function ownerNames(meta: ObjectMeta): OwnerName[] {
  return meta.ownerReferences.map((owner) => {
    const field = (name: string) => (isJsonObject(owner) && typeof owner[name] === 'string' ? { [name]: owner[name] as string } : {});
    return { ...field('kind'), ...field('name') };
  });
}

export function hasCriticalLabel(labels: Readonly<Record<string, string>>): boolean {
  return labels[CRITICAL_LABEL] === CRITICAL_VALUE;
}

/**
 * The critical label's value when it is neither "true" nor "false" ("True", "yes", "1"): a
 * look-alike that protects nothing; undefined otherwise.
 */
export function criticalLabelLookAlike(labels: Readonly<Record<string, string>>): string | undefined {
  const value = Object.hasOwn(labels, CRITICAL_LABEL) ? labels[CRITICAL_LABEL] : undefined;
  return value === undefined || value === CRITICAL_VALUE || value === 'false' ? undefined : value;
}

/** Approval annotations of an object, in key order so reports are stable. */
export function approvalAnnotations(meta: ObjectMeta): Array<{ key: string; value: string }> {
  return Object.keys(meta.annotations)
    .filter((key) => key.startsWith(APPROVAL_ANNOTATION_PREFIX))
    .sort()
    .map((key) => ({ key, value: meta.annotations[key] as string }));
}
