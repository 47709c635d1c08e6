/**
 * Planning from manifests alone: the objects of one or more rendered streams, checked as a plan
 * needs them (each a Kubernetes object, named, in a namespace, none twice), and the entries their
 * files give without a cluster: the deploy digest of each workload's spec as written. Those
 * digests lack the server's defaults, so they match what the webhook computes only when the files
 * are exactly what the cluster stores; `twokey plan --server` asks the cluster instead.
 */
import { deploySpec, digestOf } from '../change/digest.ts';
import type { PlannedObject } from '../plan/document.ts';
import type { PlanEntry } from '../plan/entries.ts';
import { AttachError } from './attach.ts';
import { readStream, type StreamObject } from './stream.ts';

/** One object of a plan: what people read of it, and the entries it adds to the plan. */
export interface ObjectPlan {
  readonly planned: PlannedObject;
  readonly entries: readonly PlanEntry[];
}

export interface ManifestText {
  readonly text: string;
  readonly source: string;
}

const describe = (o: { kind: string; namespace: string; name: string }) =>
  `${o.kind} ${o.namespace === '' ? '' : `${o.namespace}/`}${o.name}`;

/**
 * The objects of the streams, or an AttachError listing every problem: a document that is not a
 * Kubernetes object, one without a name or namespace, an object twice.
 */
export function readPlanObjects(inputs: readonly ManifestText[], namespace?: string): StreamObject[] {
  const problems: string[] = [];
  const objects: StreamObject[] = [];
  const seen = new Map<string, StreamObject>();
  for (const input of inputs) {
    const stream = readStream(input.text, input.source, namespace);
    problems.push(...stream.problems);
    for (const object of stream.objects) {
      const group = object.apiVersion.includes('/') ? object.apiVersion.slice(0, object.apiVersion.indexOf('/')) : '';
      const key = `${group}\u0000${object.kind}\u0000${object.namespace}\u0000${object.name}`;
      const first = seen.get(key);
      if (first) {
        problems.push(`${describe(object)} is in ${first.where} and again in ${object.where}`);
        continue;
      }
      seen.set(key, object);
      objects.push(object);
    }
  }
  if (problems.length > 0) throw new AttachError(problems);
  return objects;
}

/** The plan the files give by themselves: a deploy of each workload, its digest of the spec as written. */
export function planFromFiles(objects: readonly StreamObject[]): ObjectPlan[] {
  return objects.map((object) => {
    const target = { resource: object.resource, namespace: object.namespace, name: object.name };
    const base = { ...target, operation: 'unknown', source: object.where };
    if (!object.gated) return { planned: { ...base, actions: [], note: 'not gated: twokey gates no such kind' }, entries: [] };
    if (object.resource === 'namespaces') {
      return { planned: { ...base, actions: [], note: 'not gated when applied as written: a namespace is not deployed' }, entries: [] };
    }
    const digest = digestOf({ ...target, action: 'deploy', spec: deploySpec(object.object) });
    return {
      planned: {
        ...base,
        actions: ['deploy'],
        after: object.object,
        note: 'a deploy if it is critical (by its label or its namespace); digest of the file as written',
      },
      entries: [{ action: 'deploy', ...target, digest }],
    };
  });
}
