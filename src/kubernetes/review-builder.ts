/**
 * Builds an AdmissionReview v1 request as kube-apiserver would send it for an object
 * (docs/kube-apiserver.md, "The request"): for `twokey check`, which judges manifests offline, and
 * for the demo, which plays the apiserver's part.
 */
import { randomUUID } from 'node:crypto';
import { isJsonObject, type JsonObject } from '../json.ts';
import type { AdmissionReviewWire, Operation } from './admission.ts';
import { resourceForKind, typeOfResource } from './objects.ts';

export interface ReviewInput {
  readonly operation: Operation;
  readonly object?: JsonObject | null;
  readonly oldObject?: JsonObject | null;
  readonly username: string;
  readonly groups?: readonly string[];
  readonly dryRun?: boolean;
  readonly subResource?: string;
  /** Leave out `name`, as for the items of a deletecollection. */
  readonly omitName?: boolean;
  /** The resource, when the object's kind is not one twokey gates. */
  readonly resource?: { group: string; version: string; resource: string; kind: string };
}

const OPTIONS_KIND: Record<Operation, string | undefined> = {
  CREATE: 'CreateOptions',
  UPDATE: 'UpdateOptions',
  DELETE: 'DeleteOptions',
  CONNECT: undefined,
};

export function buildAdmissionReview(input: ReviewInput): AdmissionReviewWire {
  const subject = input.object ?? input.oldObject;
  if (!subject) throw new TypeError('a review needs an object or an old object');
  const metadata = isJsonObject(subject.metadata) ? subject.metadata : {};
  const apiVersion = typeof subject.apiVersion === 'string' ? subject.apiVersion : '';
  const kind = typeof subject.kind === 'string' ? subject.kind : '';
  const gr = resourceForKind(apiVersion, kind);
  const type = input.resource ?? (gr ? typeOfResource(gr) : undefined);
  if (!type) throw new TypeError(`no resource known for ${apiVersion} ${kind}`);
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  const isNamespace = type.group === '' && type.resource === 'namespaces';
  // kube-apiserver sends a Namespace's own name as request.namespace.
  const namespace = isNamespace ? name : typeof metadata.namespace === 'string' ? metadata.namespace : '';
  const gvk = { group: type.group, version: type.version, kind: type.kind };
  const gvr = { group: type.group, version: type.version, resource: type.resource };
  const optionsKind = OPTIONS_KIND[input.operation];
  return {
    kind: 'AdmissionReview',
    apiVersion: 'admission.k8s.io/v1',
    request: {
      uid: randomUUID(),
      kind: gvk,
      resource: gvr,
      ...(input.subResource ? { subResource: input.subResource } : {}),
      requestKind: gvk,
      requestResource: gvr,
      ...(input.subResource ? { requestSubResource: input.subResource } : {}),
      ...(name && !input.omitName ? { name } : {}),
      ...(namespace ? { namespace } : {}),
      operation: input.operation,
      userInfo: { username: input.username, ...(input.groups?.length ? { groups: [...input.groups] } : {}) },
      object: input.object ?? null,
      oldObject: input.oldObject ?? null,
      dryRun: input.dryRun ?? false,
      options: optionsKind ? { kind: optionsKind, apiVersion: 'meta.k8s.io/v1', ...(input.dryRun ? { dryRun: ['All'] } : {}) } : null,
    },
  };
}
