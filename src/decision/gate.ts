/**
 * Which requests are gated, as which action, bound to which digest (README, "What is gated").
 * Everything here is synchronous and pure; a request that cannot be judged throws CannotJudge.
 */
import { isDeepStrictEqual } from 'node:util';
import {
  type Action,
  type ChangeTarget,
  changedDeployDigest,
  deployDigest,
  deploySpec,
  digestOf,
  type OffThreadDigester,
  type UnprotectState,
  unprotectState,
} from '../change/digest.ts';
import type { JsonObject } from '../json.ts';
import type { AdmissionRequest } from '../kubernetes/admission.ts';
import {
  classifyResource,
  hasCriticalLabel,
  MalformedObjectError,
  type ObjectMeta,
  type OwnerIdentity,
  ownerIdentities,
  qualifiedResource,
  readMeta,
} from '../kubernetes/objects.ts';
import { exemptDeleterRole, type Policy } from '../policy/policy.ts';
import { quote } from '../text.ts';

/** A namespace's criticality as known from outside the object (the cluster's namespace labels). */
export type NamespaceState = 'critical' | 'not-critical' | 'unknown';

/** Whether a namespace's deletion has begun (its metadata.deletionTimestamp is set), as known from outside. */
export type NamespaceDeletion = 'deleting' | 'active' | 'unknown';

export interface NamespaceView {
  criticality(namespace: string): NamespaceState;
  deletion(namespace: string): NamespaceDeletion;
}

/** Without a cluster, namespaces are critical only by the policy's list. */
export const NO_CLUSTER_VIEW: NamespaceView = {
  criticality: () => 'not-critical',
  deletion: () => 'unknown',
};

export interface GateContext {
  readonly policy: Policy;
  readonly namespaces: NamespaceView;
  /** Set on /validate/critical: the apiserver's namespaceSelector already found the namespace critical. */
  readonly forceCritical: boolean;
  /** Computes large digests off the event loop (the server has one); the value is the same without it. */
  readonly offThread?: OffThreadDigester;
}

/** One gated aspect of a request: what it does, and the digest its approvals must be bound to. */
export interface GatedAspect {
  readonly action: Action;
  readonly digest: string;
  /** For an unprotect: the state after the change, which its digest binds. */
  readonly after?: UnprotectState;
}

export type Gate =
  | { readonly gated: false; readonly why: string }
  | {
      readonly gated: true;
      readonly target: ChangeTarget;
      /**
       * Every gated aspect of the request, in the order of ACTIONS; each needs a quorum of its own.
       * An UPDATE that changes the spec and takes the protection away is both a deploy and an unprotect.
       */
      readonly aspects: readonly [GatedAspect, ...GatedAspect[]];
      /** The object whose approval annotations count. */
      readonly approvalsFrom: ObjectMeta;
    };

/** The request is gated but something needed to judge it is missing or malformed. */
export class CannotJudge extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CannotJudge';
  }
}

const notGated = (why: string): Gate => ({ gated: false, why });

/** Reads part of an object; what is malformed there makes the request one twokey cannot judge. */
function readable<T>(field: string, read: () => T): T {
  try {
    return read();
  } catch (error) {
    if (error instanceof MalformedObjectError) throw new CannotJudge(`${field}: ${error.message}`);
    throw error;
  }
}

/** An object of the review with its metadata, read and validated. */
type Meta = ObjectMeta & { readonly object: JsonObject };

function meta(object: JsonObject | null, field: string, operation: string): Meta {
  if (object === null) throw new CannotJudge(`the ${operation} review carries no ${field}`);
  return readable(field, () => ({ ...readMeta(object), object }));
}

/**
 * The objects of one review, their metadata and owners each read once however often the gate
 * asks: a workload whose namespace is not known yet is gated both ways.
 */
class ReviewObjects {
  readonly #request: AdmissionRequest;
  #object: Meta | undefined;
  #old: Meta | undefined;
  #objectOwners: OwnerIdentity[] | undefined;
  #oldOwners: OwnerIdentity[] | undefined;

  constructor(request: AdmissionRequest) {
    this.#request = request;
  }

  /** The new object; `operation` names the review in the reason when it carries none. */
  object(operation: string): Meta {
    this.#object ??= meta(this.#request.object, 'object', operation);
    return this.#object;
  }

  /** The object as it is now (the old object of an UPDATE or DELETE). */
  old(operation: string): Meta {
    this.#old ??= meta(this.#request.oldObject, 'oldObject', operation);
    return this.#old;
  }

  /** The owners of the new object; they are told apart by the four fields the garbage collector resolves them by. */
  objectOwners(operation: string): OwnerIdentity[] {
    const object = this.object(operation);
    this.#objectOwners ??= readable('object', () => ownerIdentities(object));
    return this.#objectOwners;
  }

  /** The owners of the object as it is now. */
  oldOwners(operation: string): OwnerIdentity[] {
    const old = this.old(operation);
    this.#oldOwners ??= readable('oldObject', () => ownerIdentities(old));
    return this.#oldOwners;
  }
}

function targetName(request: AdmissionRequest, ...metas: ObjectMeta[]): string {
  const names = new Set([request.name, ...metas.map((m) => m.name)].filter((n) => n !== ''));
  if (names.size !== 1) {
    throw new CannotJudge(
      names.size === 0
        ? 'the object has no name'
        : `the review names the object inconsistently (${[...names].map((n) => quote(n)).join(', ')})`,
    );
  }
  return [...names][0] as string;
}

function checkNamespace(request: AdmissionRequest, ...metas: ObjectMeta[]): string {
  if (request.namespace === '') throw new CannotJudge('the review of a namespaced workload has no namespace');
  for (const m of metas) {
    if (m.namespace !== '' && m.namespace !== request.namespace) {
      throw new CannotJudge(`the object's metadata.namespace ${quote(m.namespace)} differs from the request's ${quote(request.namespace)}`);
    }
  }
  return request.namespace;
}

/** A spec that cannot be canonicalised (RFC 8785 refuses lone surrogates, non-finite numbers) cannot be judged. */
async function judgeable<T>(digest: Promise<T>): Promise<T> {
  try {
    return await digest;
  } catch (error) {
    throw new CannotJudge(`its spec cannot be digested (${error instanceof Error ? error.message : String(error)})`);
  }
}

function requireUid(old: ObjectMeta, action: Action): string {
  if (old.uid === '') throw new CannotJudge(`the object has no metadata.uid, so a ${action} approval cannot be bound to it`);
  return old.uid;
}

function gated(target: ChangeTarget, aspects: readonly [GatedAspect, ...GatedAspect[]], from: ObjectMeta): Gate {
  return { gated: true, target, aspects, approvalsFrom: from };
}

function deleteAspect(target: ChangeTarget, old: ObjectMeta): GatedAspect {
  return { action: 'delete', digest: digestOf({ ...target, action: 'delete', uid: requireUid(old, 'delete') }) };
}

/** Bound to the live object's uid and to the state the change leaves: its label and its owners. */
function unprotectAspect(target: ChangeTarget, old: ObjectMeta, object: ObjectMeta): GatedAspect {
  const after = readable('object', () => unprotectState(object));
  return { action: 'unprotect', digest: digestOf({ ...target, action: 'unprotect', uid: requireUid(old, 'unprotect'), ...after }), after };
}

function gateNamespace(request: AdmissionRequest, objects: ReviewObjects, ctx: GateContext): Gate {
  const critical = (m: ObjectMeta, name: string) =>
    ctx.forceCritical || hasCriticalLabel(m.labels) || ctx.policy.criticalNamespaces.has(name);
  const resource = qualifiedResource(request.resource);
  switch (request.operation) {
    case 'CREATE':
      return notGated('creating a namespace is not gated');
    case 'UPDATE': {
      const object = objects.object('UPDATE');
      const old = objects.old('UPDATE');
      const name = targetName(request, object, old);
      if (!critical(old, name)) {
        // Its deletion was not approved as a critical namespace's; made critical now, it would
        // exempt the namespace controller's deletes of the workloads that need approvals of their own.
        if (old.deletionTimestamp !== '' && critical(object, name)) {
          throw new CannotJudge(
            `namespace ${quote(name)} is being deleted, and was not critical when its deletion began: it cannot be made critical now. To let the deletion finish, approve the deletion of each workload in it that is critical by its own label (attach delete approvals to it)`,
          );
        }
        return notGated('the namespace is not critical');
      }
      if (critical(object, name) && !handsOverDeletion(objects)) return notGated('the namespace stays critical');
      const target = { resource, namespace: '', name };
      return gated(target, [unprotectAspect(target, old, object)], object);
    }
    case 'DELETE': {
      const old = objects.old('DELETE');
      const name = targetName(request, old);
      if (!critical(old, name)) return notGated('the namespace is not critical');
      const target = { resource, namespace: '', name };
      return gated(target, [deleteAspect(target, old)], old);
    }
    default:
      return notGated(`${request.operation} is not gated`);
  }
}

async function gateWorkload(
  request: AdmissionRequest,
  objects: ReviewObjects,
  namespaceCritical: boolean,
  offThread: OffThreadDigester | undefined,
): Promise<Gate> {
  const critical = (m: ObjectMeta) => namespaceCritical || hasCriticalLabel(m.labels);
  const resource = qualifiedResource(request.resource);
  switch (request.operation) {
    case 'CREATE': {
      const object = objects.object('CREATE');
      const target = {
        resource,
        namespace: checkNamespace(request, object),
        name: targetName(request, object),
      };
      if (!critical(object)) return notGated('the workload is not critical');
      const digest = await judgeable(deployDigest(target, deploySpec(object.object), offThread));
      return gated(target, [{ action: 'deploy', digest }], object);
    }
    case 'UPDATE': {
      const object = objects.object('UPDATE');
      const old = objects.old('UPDATE');
      const target = {
        resource,
        namespace: checkNamespace(request, object, old),
        name: targetName(request, object, old),
      };
      const wasCritical = critical(old);
      if (!wasCritical && !critical(object)) return notGated('the workload is not critical');
      // Every gated aspect is judged: a spec changed along with the owners or the label is a deploy
      // too, and unprotect approvals must not carry it. Through status or finalize only metadata
      // changes stick, so the spec is not judged there.
      const judgesSpec = request.subResource === '';
      const aspects: GatedAspect[] = [];
      const digest = judgesSpec ? await judgeable(changedDeployDigest(target, object.object, old.object, offThread)) : undefined;
      if (digest !== undefined) aspects.push({ action: 'deploy', digest });
      if (wasCritical && (!critical(object) || handsOverDeletion(objects))) aspects.push(unprotectAspect(target, old, object));
      const [first, ...rest] = aspects;
      if (first !== undefined) return gated(target, [first, ...rest], object);
      return notGated(
        judgesSpec
          ? 'the deploy digest is unchanged (metadata or scale only)'
          : `the ${request.subResource} subresource keeps the label and the owners`,
      );
    }
    case 'DELETE': {
      const old = objects.old('DELETE');
      const target = {
        resource,
        namespace: checkNamespace(request, old),
        name: targetName(request, old),
      };
      return critical(old) ? gated(target, [deleteAspect(target, old)], old) : notGated('the workload is not critical');
    }
    default:
      return notGated(`${request.operation} is not gated`);
  }
}

/**
 * Whether an UPDATE gives the object new or changed owners. The garbage collector deletes an
 * object whose owner is gone, and its deletes are exempt; adding an owner (even one that does not
 * exist) would delete a critical object without approvals, so it is gated as unprotect.
 * Removing owners only takes deletion away from the garbage collector and is not gated.
 */
function handsOverDeletion(objects: ReviewObjects): boolean {
  const identity = (o: OwnerIdentity) => JSON.stringify([o.apiVersion, o.kind, o.name, o.uid]);
  const known = new Set(objects.oldOwners('UPDATE').map(identity));
  return objects.objectOwners('UPDATE').some((owner) => !known.has(identity(owner)));
}

function sameGate(a: Gate, b: Gate): boolean {
  if (!a.gated || !b.gated) return a.gated === b.gated;
  return isDeepStrictEqual(a.aspects, b.aspects);
}

/**
 * Subresources through which Kubernetes keeps metadata changes: a Deployment's status keeps
 * owner changes; a StatefulSet's, DaemonSet's or CronJob's status and a Namespace's status and
 * finalize keep label and owner changes. Their spec changes are reset, and `scale` changes only
 * spec.replicas.
 */
const METADATA_SUBRESOURCES: ReadonlySet<string> = new Set(['status', 'finalize']);

export async function gateRequest(request: AdmissionRequest, ctx: GateContext): Promise<Gate> {
  const kind = classifyResource(request.resource);
  if (kind === undefined) return notGated(`${qualifiedResource(request.resource)} is not gated`);
  if (request.subResource !== '' && !(METADATA_SUBRESOURCES.has(request.subResource) && request.operation === 'UPDATE')) {
    return notGated(`the ${request.subResource} subresource is not gated`);
  }
  const role = request.operation === 'DELETE' ? exemptDeleterRole(ctx.policy, request.user.username) : undefined;
  const objects = new ReviewObjects(request);
  if (kind === 'namespace') {
    // The namespace controller's last step deletes the emptied Namespace, whose deletion was
    // judged when it began: that is cleanup, however long it took. A Namespace not yet being
    // deleted is another matter: the garbage collector deletes one whose owner is gone, and
    // owners (say, a tenant object) can be deleted without approvals.
    const finishing = role !== undefined && request.oldObject !== null && objects.old('DELETE').deletionTimestamp !== '';
    return finishing
      ? notGated('the namespace is already being deleted; finishing it is cluster cleanup')
      : gateNamespace(request, objects, ctx);
  }

  const namespace = request.namespace;
  const byRouteOrPolicy = ctx.forceCritical || ctx.policy.criticalNamespaces.has(namespace);
  const state: NamespaceState = byRouteOrPolicy ? 'critical' : ctx.namespaces.criticality(namespace);
  // The namespace controller empties a namespace whose deletion has begun; its identity deleting
  // anywhere else is not that cleanup, and is judged like anyone's delete.
  const deleting = role !== undefined && ctx.namespaces.deletion(namespace) === 'deleting';
  const cleanup = role === 'garbageCollector' || (role === 'namespaceController' && deleting);
  if (cleanup) {
    // The cluster's cleanup is exempt so that an approved namespace deletion never hangs. A
    // workload critical by its own label was covered by no approval when its owner was deleted,
    // nor when a namespace that was not critical was: it needs approvals of its own, unless its
    // namespace is critical and being deleted (that deletion was approved, and a namespace being
    // deleted cannot be made critical). A namespace critical but not being deleted is no proof:
    // its label may have been added after the owner was deleted.
    const labelled = request.oldObject !== null && hasCriticalLabel(objects.old('DELETE').labels);
    if (!labelled || (state === 'critical' && deleting)) {
      return notGated(
        role === 'garbageCollector'
          ? 'deletes by the garbage collector are exempt (cluster cleanup)'
          : 'the namespace controller is emptying a namespace being deleted (cluster cleanup)',
      );
    }
  }
  if (state === 'critical' && !byRouteOrPolicy) {
    // The namespace watch can lag the apiserver, whose own view routes critical namespaces to
    // /validate/critical: when the two may disagree, a request is gated if either view gates it.
    const ifCritical = await gateWorkload(request, objects, true, ctx.offThread);
    return ifCritical.gated ? ifCritical : gateWorkload(request, objects, false, ctx.offThread);
  }
  if (state !== 'unknown') return gateWorkload(request, objects, state === 'critical', ctx.offThread);
  // The namespace's labels are not known yet: judge only when the answer does not depend on them.
  const ifCritical = await gateWorkload(request, objects, true, ctx.offThread);
  const ifNot = await gateWorkload(request, objects, false, ctx.offThread);
  if (sameGate(ifCritical, ifNot)) return ifNot;
  throw new CannotJudge(
    `twokey does not know the labels of namespace ${quote(namespace)} yet (its namespace cache has not seen it), so it cannot tell whether this workload is critical; retry in a moment`,
  );
}
