/**
 * `twokey plan --server`: what applying rendered manifests would change, asked of the cluster.
 * Each object is dry-run as the real apply would send it (server-side apply, the same field
 * manager) with the plan marker, so that twokey in the cluster admits the dry run and tells the
 * digest of each gated aspect as the webhook computes it, server defaults and mutations included.
 * The live object and the dry run's result give a diff for people to read, and each digest told
 * is checked against that result: a digest that is not of what the diff shows is refused, since
 * approvals of it would approve a change nobody read (another webhook or a proxy can add warnings).
 */
import { type Action, actionDigest, type ChangeTarget, describeChangeTarget } from '../change/digest.ts';
import { digestFromRefusal, planLine } from '../decision/wording.ts';
import { describeError, TwokeyError } from '../errors.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { PLAN_MARKER_ANNOTATION, readMeta, resourceForKind } from '../kubernetes/objects.ts';
import type { ObjectPlan } from '../manifests/plan.ts';
import type { StreamObject } from '../manifests/stream.ts';
import { objectDiff, withoutNoise } from '../plan/diff.ts';
import type { PlannedObject } from '../plan/document.ts';
import type { PlanEntry } from '../plan/entries.ts';
import type { ClusterClient } from './client.ts';
import { resourcePath } from './rest.ts';

export interface PlanOptions {
  readonly client: ClusterClient;
  readonly fieldManager: string;
  /** The namespace of namespaced objects that name none (`-n`); without it they are an error. */
  readonly namespace?: string;
  /** How many objects are dry-run at once. */
  readonly concurrency?: number;
}

/** Where the server serves a kind: its API path prefix, plural and scope, from discovery. */
interface ServedKind {
  readonly prefix: string;
  readonly plural: string;
  readonly namespaced: boolean;
}

class Discovery {
  readonly #client: ClusterClient;
  readonly #groups = new Map<string, Promise<Map<string, ServedKind> | undefined>>();

  constructor(client: ClusterClient) {
    this.#client = client;
  }

  async kind(apiVersion: string, kind: string): Promise<ServedKind | undefined> {
    let group = this.#groups.get(apiVersion);
    if (!group) {
      group = this.#discover(apiVersion);
      this.#groups.set(apiVersion, group);
    }
    return (await group)?.get(kind);
  }

  async #discover(apiVersion: string): Promise<Map<string, ServedKind> | undefined> {
    const prefix = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const list = await this.#client.readAt(prefix, `the API ${apiVersion}`);
    if (!list || !Array.isArray(list.resources)) return undefined;
    const kinds = new Map<string, ServedKind>();
    for (const resource of list.resources) {
      if (!isJsonObject(resource) || typeof resource.name !== 'string' || resource.name.includes('/')) continue;
      if (typeof resource.kind !== 'string' || kinds.has(resource.kind)) continue;
      kinds.set(resource.kind, { prefix, plural: resource.name, namespaced: resource.namespaced === true });
    }
    return kinds;
  }
}

/**
 * The digest of an aspect of the dry run's result, as twokey's webhook computes it from the same
 * object; undefined where the result cannot have one (an apply deletes nothing).
 */
function digestOfResult(action: Action, target: ChangeTarget, live: JsonObject | undefined, after: JsonObject): string | undefined {
  if (action === 'delete') return undefined;
  return actionDigest(action, target, { after, ...(live ? { uid: readMeta(live).uid } : {}) });
}

/** The object as a planned dry run sends it: with the plan marker, and the namespace it is planned in. */
export function withPlanMarker(object: JsonObject, namespace: string): JsonObject {
  const metadata = isJsonObject(object.metadata) ? object.metadata : {};
  const annotations = isJsonObject(metadata.annotations) ? metadata.annotations : {};
  return {
    ...object,
    metadata: {
      ...metadata,
      ...(namespace !== '' ? { namespace } : {}),
      annotations: { ...annotations, [PLAN_MARKER_ANNOTATION]: 'dry-run' },
    },
  };
}

/** Why a dry run with the plan marker was refused, for the person who asked. */
export function plannedDryRunRefused(
  outcome: { readonly message: string; readonly byTwokey: boolean },
  label: string,
  source?: string,
): TwokeyError {
  const why = !outcome.byTwokey
    ? 'the cluster refused it'
    : digestFromRefusal(outcome.message) === undefined
      ? 'twokey could not judge it'
      : 'twokey in the cluster asks for approvals: it does not know the plan marker, upgrade it';
  return new TwokeyError('ERR_CLUSTER', `${source ? `${source}: ` : ''}the dry run of ${label} failed (${why}): ${outcome.message}`);
}

/** The aspects the warnings tell for this object, each digest checked against the dry run's result. */
export function toldEntries(
  warnings: readonly string[],
  target: ChangeTarget,
  source: string,
  live: JsonObject | undefined,
  after: JsonObject,
): PlanEntry[] {
  const entries: PlanEntry[] = [];
  const where = target.namespace === '' ? target.name : `${target.namespace}/${target.name}`;
  const label = describeChangeTarget(target);
  for (const warning of warnings) {
    const line = planLine(warning);
    if (!line || line.resource !== target.resource || line.where !== where) continue;
    const refuse = (why: string) =>
      new TwokeyError(
        'ERR_CLUSTER',
        `${source}: the dry run of ${label} told the ${line.action} digest ${line.digest}, ${why}: a warning not written by twokey's webhook (another webhook or a proxy can add them), or a twokey of another version; approvals of that digest would not approve the object the dry run returned`,
      );
    let computed: string | undefined;
    try {
      computed = digestOfResult(line.action, target, live, after);
    } catch (error) {
      throw refuse(`but the object it returned has no such digest (${describeError(error)})`);
    }
    if (computed !== line.digest) throw refuse(`but the object it returned has ${computed ?? 'no such digest'}`);
    // The same line twice (a warning repeated on the way) is one aspect.
    if (!entries.some((e) => e.action === line.action)) entries.push({ action: line.action, ...target, digest: line.digest });
  }
  return entries;
}

async function planOne(object: StreamObject, options: PlanOptions, discovery: Discovery): Promise<ObjectPlan> {
  const { client } = options;
  const gr = resourceForKind(object.apiVersion, object.kind);
  let path: string;
  let namespace = object.namespace;
  if (gr) {
    path = resourcePath(gr, namespace, object.name);
  } else {
    const served = await discovery.kind(object.apiVersion, object.kind);
    if (!served) {
      throw new TwokeyError(
        'ERR_MANIFEST_INVALID',
        `${object.where}: the cluster serves no kind ${object.kind} in ${object.apiVersion} (${object.name})`,
      );
    }
    if (served.namespaced && namespace === '') {
      if (options.namespace === undefined) {
        throw new TwokeyError(
          'ERR_MANIFEST_INVALID',
          `${object.where}: ${object.kind} ${object.name} names no namespace; give one with -n (kubectl would put it in the context's namespace)`,
        );
      }
      namespace = options.namespace;
    }
    if (!served.namespaced) namespace = '';
    const scope = served.namespaced ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    path = `${served.prefix}${scope}/${served.plural}/${encodeURIComponent(object.name)}`;
  }
  const target = { resource: object.resource, namespace, name: object.name };
  const label = describeChangeTarget(target);
  const sent = withPlanMarker(object.object, namespace);
  const live = await client.readAt(path, label);
  const outcome = await client.dryRunApplyAt(path, label, sent, options.fieldManager);
  if (outcome.kind === 'refused') throw plannedDryRunRefused(outcome, label, object.where);
  const entries = toldEntries(outcome.warnings, target, object.where, live, outcome.object);
  const diff = objectDiff(label, live, outcome.object);
  // What its entries are computed from travels with a gated object, so that reading the plan checks them.
  const uid = live === undefined ? '' : readMeta(live).uid;
  const shown =
    entries.length === 0
      ? {}
      : { after: withoutNoise(outcome.object), ...(live ? { before: withoutNoise(live) } : {}), ...(uid !== '' ? { uid } : {}) };
  const planned: PlannedObject = {
    ...target,
    actions: entries.map((e) => e.action),
    operation: live ? 'update' : 'create',
    source: object.where,
    diff,
    ...shown,
    note:
      entries.length > 0
        ? `gated: ${entries.map((e) => e.action).join(' and ')}`
        : object.gated
          ? diff === ''
            ? 'not gated: the apply changes nothing'
            : 'not gated: twokey in the cluster admitted the dry run without a digest (not critical, or nothing a deploy binds changes)'
          : 'not gated: twokey gates no such kind',
  };
  return { planned, entries };
}

/** Plans each object against the cluster, a few at a time; the results in the objects' order. */
export async function planAgainstCluster(objects: readonly StreamObject[], options: PlanOptions): Promise<ObjectPlan[]> {
  const discovery = new Discovery(options.client);
  const results: ObjectPlan[] = new Array(objects.length);
  let next = 0;
  const worker = async () => {
    while (next < objects.length) {
      const index = next++;
      results[index] = await planOne(objects[index] as StreamObject, options, discovery);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 8, objects.length) }, worker));
  return results;
}
