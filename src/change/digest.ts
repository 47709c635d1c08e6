/**
 * Change subjects and their digests: what an approval is bound to.
 * digest = "sha256:" + hex(SHA-256(UTF-8(JCS(subject)))), RFC 8785 canonical JSON.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import canonicalize from 'canonicalize';
import { isJsonObject, type JsonObject } from '../json.ts';
import { hasCriticalLabel, type ObjectMeta, type OwnerIdentity, ownerIdentities, readMeta } from '../kubernetes/objects.ts';

export type Action = 'deploy' | 'delete' | 'unprotect';
export const ACTIONS: readonly Action[] = ['deploy', 'delete', 'unprotect'];

export interface ChangeTarget {
  /** `<plural>.<group>`, or the plural alone for the core group. */
  readonly resource: string;
  /** "" for cluster-scoped objects, Namespaces included. */
  readonly namespace: string;
  readonly name: string;
}

/**
 * What an unprotect's approvals bind besides the live object's uid: the object as the change
 * leaves it, so that approvals of one owner handover or label removal approve no other.
 */
export interface UnprotectState {
  /** Whether the new object carries the label twokey.dev/critical: "true". */
  readonly critical: boolean;
  /** The new object's owners. */
  readonly owners: readonly OwnerIdentity[];
}

export type ChangeSubject =
  | (ChangeTarget & { readonly action: 'deploy'; readonly spec: unknown })
  | (ChangeTarget & { readonly action: 'delete'; readonly uid: string })
  | (ChangeTarget & UnprotectState & { readonly action: 'unprotect'; readonly uid: string });

export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** A target as people read it: `<resource> <namespace>/<name>`, the name alone when cluster-scoped. */
export function describeChangeTarget(target: ChangeTarget): string {
  return `${target.resource} ${target.namespace === '' ? '' : `${target.namespace}/`}${target.name}`;
}

/** The object's spec as a deploy sees it: `spec.replicas` removed, since scaling is not a deploy. */
export function deploySpec(object: JsonObject): unknown {
  const spec = object.spec;
  if (spec === undefined) return null;
  if (!isJsonObject(spec) || !Object.hasOwn(spec, 'replicas')) return spec;
  const { replicas: _replicas, ...rest } = spec;
  return rest;
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Owners as an unprotect subject lists them: the four fields that identify each, sorted by uid,
 * then apiVersion, kind and name (as strings, by UTF-16 code units), without duplicates.
 */
export function canonicalOwners(owners: readonly OwnerIdentity[]): OwnerIdentity[] {
  const sorted = owners
    .map(({ apiVersion, kind, name, uid }) => ({ apiVersion, kind, name, uid }))
    .sort((a, b) => compare(a.uid, b.uid) || compare(a.apiVersion, b.apiVersion) || compare(a.kind, b.kind) || compare(a.name, b.name));
  return sorted.filter((owner, index) => index === 0 || !isDeepStrictEqual(owner, sorted[index - 1]));
}

/**
 * The state an unprotect binds, read from the object as the change leaves it. Throws
 * MalformedObjectError for an owner entry that lacks one of the fields that identify it.
 */
export function unprotectState(object: ObjectMeta): UnprotectState {
  return { critical: hasCriticalLabel(object.labels), owners: canonicalOwners(ownerIdentities(object)) };
}

export function subjectJson(subject: ChangeSubject): JsonObject {
  const base = {
    action: subject.action,
    resource: subject.resource,
    namespace: subject.namespace,
    name: subject.name,
  };
  switch (subject.action) {
    case 'deploy':
      return { ...base, spec: subject.spec };
    case 'delete':
      return { ...base, uid: subject.uid };
    case 'unprotect':
      return { ...base, uid: subject.uid, critical: subject.critical, owners: canonicalOwners(subject.owners) };
  }
}

/**
 * The digest of an action on a target from what it binds: the object as the change leaves it
 * (deploy, unprotect) and the live object's uid (delete, unprotect); undefined when one is missing.
 * Throws MalformedObjectError for an object whose owners cannot be read.
 */
export function actionDigest(action: Action, target: ChangeTarget, bound: { after?: JsonObject; uid?: string }): string | undefined {
  const { after, uid } = bound;
  switch (action) {
    case 'deploy':
      return after === undefined ? undefined : digestOf({ ...target, action, spec: deploySpec(after) });
    case 'unprotect':
      return after === undefined || !uid ? undefined : digestOf({ ...target, action, uid, ...unprotectState(readMeta(after)) });
    case 'delete':
      return uid ? digestOf({ ...target, action, uid }) : undefined;
  }
}

/** "sha256:" + hex SHA-256 of the RFC 8785 canonical form of a JSON value. */
export function canonicalDigest(value: unknown): string {
  const canonical = canonicalize(value);
  if (canonical === undefined) throw new TypeError('change subject cannot be canonicalized');
  return `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}

/**
 * Digests of recent subjects, by their JSON text. Equal JSON text means equal values in the same
 * order, hence the same canonical form: a memo, not an approximation. (JSON.stringify is lossy
 * only for non-finite numbers, which RFC 8785 refuses and no kube-apiserver review can carry:
 * the apiserver cannot decode them. A direct request holding one may get the digest of the same
 * spec with null there; its answer changes nothing in a cluster.) JSON.stringify is native
 * and several times cheaper than canonicalising and hashing, and retried or re-sent reviews of
 * the same object are the common case. Bounded by entries and by bytes.
 */
const memo = new Map<string, string>();
let memoBytes = 0;
const MEMO_ENTRIES = 512;
const MEMO_BYTES = 4 * 1024 * 1024;

function remember(text: string, digest: string): void {
  if (text.length > MEMO_BYTES / 8) return;
  memo.set(text, digest);
  memoBytes += text.length;
  for (const [oldest] of memo) {
    if (memo.size <= MEMO_ENTRIES && memoBytes <= MEMO_BYTES) break;
    memo.delete(oldest);
    memoBytes -= oldest.length;
  }
}

export function digestOf(subject: ChangeSubject): string {
  const json = subjectJson(subject);
  const text = JSON.stringify(json);
  const known = memo.get(text);
  if (known !== undefined) return known;
  const digest = canonicalDigest(json);
  remember(text, digest);
  return digest;
}

/** Subjects larger than this (as JSON text) are canonicalised off the event loop. */
export const LARGE_SUBJECT_CHARS = 64 * 1024;

/** Canonicalises and hashes a subject's JSON text on another thread; see digest-worker.ts. */
export type OffThreadDigester = (subjectText: string) => Promise<string>;

/**
 * The deploy digest, computed off the event loop when the subject is large, so a multi-megabyte
 * spec does not stall every other review. Same value as digestOf.
 */
export async function deployDigest(target: ChangeTarget, spec: unknown, offThread?: OffThreadDigester): Promise<string> {
  const subject: ChangeSubject = { ...target, action: 'deploy', spec };
  if (!offThread) return digestOf(subject);
  const text = JSON.stringify(subjectJson(subject));
  const known = memo.get(text);
  if (known !== undefined) return known;
  if (text.length <= LARGE_SUBJECT_CHARS) {
    const digest = canonicalDigest(JSON.parse(text));
    remember(text, digest);
    return digest;
  }
  return offThread(text);
}

/**
 * The deploy digest of `object` when an UPDATE changes it, or undefined when it does not. Equal
 * specs (the common case: metadata-only updates, scaling) are recognised without canonicalising:
 * by equal JSON text for large specs, structurally for small ones. Unequal ones are compared by
 * digest, since values such as -0 and 0 differ structurally but canonicalise alike.
 */
export async function changedDeployDigest(
  target: ChangeTarget,
  object: JsonObject,
  oldObject: JsonObject,
  offThread?: OffThreadDigester,
): Promise<string | undefined> {
  const spec = deploySpec(object);
  const oldSpec = deploySpec(oldObject);
  if (offThread) {
    const text = JSON.stringify(spec);
    if (text === JSON.stringify(oldSpec)) return undefined;
    if (text.length <= LARGE_SUBJECT_CHARS && isDeepStrictEqual(spec, oldSpec)) return undefined;
  } else if (isDeepStrictEqual(spec, oldSpec)) {
    return undefined;
  }
  const [digest, oldDigest] = await Promise.all([deployDigest(target, spec, offThread), deployDigest(target, oldSpec, offThread)]);
  return digest === oldDigest ? undefined : digest;
}
