/**
 * Change subjects and their digests: what an approval is bound to.
 * digest = "sha256:" + hex(SHA-256(UTF-8(JCS(subject)))), RFC 8785 canonical JSON.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import canonicalize from 'canonicalize';
import { isJsonObject, type JsonObject } from '../kubernetes/objects.ts';

export type Action = 'deploy' | 'delete' | 'unprotect';
export const ACTIONS: readonly Action[] = ['deploy', 'delete', 'unprotect'];

export interface ChangeTarget {
  /** `<plural>.<group>`, or the plural alone for the core group. */
  readonly resource: string;
  /** "" for cluster-scoped objects, Namespaces included. */
  readonly namespace: string;
  readonly name: string;
}

export type ChangeSubject =
  | (ChangeTarget & { readonly action: 'deploy'; readonly spec: unknown })
  | (ChangeTarget & {
      readonly action: 'delete' | 'unprotect';
      readonly uid: string;
    });

export const DIGEST_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** The object's spec as a deploy sees it: `spec.replicas` removed, since scaling is not a deploy. */
export function deploySpec(object: JsonObject): unknown {
  const spec = object.spec;
  if (spec === undefined) return null;
  if (!isJsonObject(spec) || !Object.hasOwn(spec, 'replicas')) return spec;
  const { replicas: _replicas, ...rest } = spec;
  return rest;
}

export function subjectJson(subject: ChangeSubject): JsonObject {
  const base = {
    action: subject.action,
    resource: subject.resource,
    namespace: subject.namespace,
    name: subject.name,
  };
  return subject.action === 'deploy' ? { ...base, spec: subject.spec } : { ...base, uid: subject.uid };
}

export function digestOf(subject: ChangeSubject): string {
  const canonical = canonicalize(subjectJson(subject));
  if (canonical === undefined) throw new TypeError('change subject cannot be canonicalized');
  return `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`;
}

/**
 * The deploy digest of `object` when an UPDATE changes it, or undefined when it does not. Equal
 * specs (the common case: metadata-only updates, scaling) are recognised without canonicalising;
 * unequal ones are compared by digest, since values such as -0 and 0 differ structurally but
 * canonicalise alike.
 */
export function changedDeployDigest(target: ChangeTarget, object: JsonObject, oldObject: JsonObject): string | undefined {
  const spec = deploySpec(object);
  const oldSpec = deploySpec(oldObject);
  if (isDeepStrictEqual(spec, oldSpec)) return undefined;
  const digest = digestOf({ ...target, action: 'deploy', spec });
  return digest === digestOf({ ...target, action: 'deploy', spec: oldSpec }) ? undefined : digest;
}
