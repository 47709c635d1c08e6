/**
 * `twokey digest`: the change digest of each gated object in a manifest, computed locally or,
 * with --server, by the cluster (server defaults and mutations included).
 */
import { type Command, Option } from 'commander';
import { ACTIONS, type Action, type ChangeTarget, deploySpec, digestOf, type UnprotectState, unprotectState } from '../change/digest.ts';
import { ClusterClient } from '../cluster/client.ts';
import { plannedDryRunRefused, toldEntries, withPlanMarker } from '../cluster/plan.ts';
import { planLine } from '../decision/wording.ts';
import { TwokeyError } from '../errors.ts';
import type { JsonObject } from '../json.ts';
import { MalformedObjectError, type ObjectMeta, qualifiedResource, readMeta } from '../kubernetes/objects.ts';
import { type ClusterFlags, kubeConfigOptions, type Terminal, withClusterOptions, withFieldManagerOption } from './common.ts';
import { describeManifest, type ManifestObject, readManifests } from './manifests.ts';

/** Deploys are what one approves for workloads; a Namespace is only ever deleted or unprotected. */
export function defaultAction(m: ManifestObject): Action {
  return m.resource.resource === 'namespaces' ? 'delete' : 'deploy';
}

/** The action asked for (or the default), refused where no webhook would ever gate it. */
export function actionFor(m: ManifestObject, asked: Action | undefined): Action {
  const action = asked ?? defaultAction(m);
  if (action === 'deploy' && m.resource.resource === 'namespaces') {
    throw new TwokeyError('ERR_MANIFEST_INVALID', `Namespace ${m.name}: a namespace is not deployed; use --action delete or unprotect`);
  }
  return action;
}

export function targetOf(m: ManifestObject): ChangeTarget {
  return { resource: qualifiedResource(m.resource), namespace: m.namespace, name: m.name };
}

/**
 * The digest of an object for an action. A delete binds the live object's uid; an unprotect binds
 * it too, with the object as the change leaves it (its critical label and owners): `object` is the
 * object as it will be, `uid` the live object's.
 */
export function objectDigest(m: ManifestObject, action: Action, object: JsonObject = m.object, uid?: string): string {
  const target = targetOf(m);
  if (action === 'deploy') return digestOf({ ...target, action, spec: deploySpec(object) });
  let meta: ObjectMeta;
  let after: UnprotectState | undefined;
  try {
    meta = readMeta(object);
    after = action === 'unprotect' ? unprotectState(meta) : undefined;
  } catch (error) {
    if (error instanceof MalformedObjectError) throw new TwokeyError('ERR_MANIFEST_INVALID', `${describeManifest(m)}: ${error.message}`);
    throw error;
  }
  const bound = uid ?? meta.uid;
  if (bound === '') {
    throw new TwokeyError(
      'ERR_MANIFEST_INVALID',
      `${target.resource} ${target.namespace}/${target.name} has no metadata.uid: a ${action} digest binds the live object's uid (use --server, or the output of kubectl get -o yaml)`,
    );
  }
  return after === undefined
    ? digestOf({ ...target, action: 'delete', uid: bound })
    : digestOf({ ...target, action: 'unprotect', uid: bound, ...after });
}

/**
 * The digest the webhook in the cluster computes for this change. The object is dry-run with the
 * plan marker, so twokey admits it, and the digest is computed from the object the dry run returned
 * (what the webhook judged: server defaults and mutations included); a digest twokey's webhook told
 * must agree with it, since any webhook or proxy can add a warning.
 */
export async function serverDigest(client: ClusterClient, m: ManifestObject, action: Action, fieldManager?: string): Promise<string> {
  let live: JsonObject | undefined;
  if (action !== 'deploy') {
    live = await client.read(m.resource, m.namespace, m.name);
    if (!live) throw new TwokeyError('ERR_CLUSTER', `${describeManifest(m)} does not exist in the cluster`);
    if (action === 'delete') return objectDigest(m, action, live);
  }
  const outcome = await client.dryRunApply(m.resource, m.namespace, m.name, withPlanMarker(m.object, m.namespace), fieldManager);
  if (outcome.kind === 'refused') throw plannedDryRunRefused(outcome, describeManifest(m));
  const told = outcome.warnings.filter((warning) => planLine(warning)?.action === action);
  toldEntries(told, targetOf(m), describeManifest(m), live, outcome.object);
  return objectDigest(m, action, outcome.object, live === undefined ? undefined : readMeta(live).uid);
}

interface DigestFlags extends ClusterFlags {
  file: string;
  action?: Action;
  namespace?: string;
  server?: boolean;
}

export function registerDigest(program: Command, { out, err, io }: Terminal): void {
  withFieldManagerOption(
    withClusterOptions(
      program
        .command('digest')
        .description(
          'print the change digest of each gated object: sha256:<hex>  <resource> <namespace>/<name> (<name> alone for a Namespace)',
        )
        .requiredOption('-f, --file <file>', 'manifest file (YAML or JSON, several documents allowed), or - for stdin')
        .addOption(new Option('--action <action>', 'which change to digest (default: deploy; delete for Namespaces)').choices(ACTIONS))
        .option(
          '-n, --namespace <ns>',
          'namespace for objects that do not name one (default: "default", or the context namespace with --server)',
        )
        .option(
          '--server',
          "ask the cluster: a server-side dry run gives the digest the webhook computes, server defaults included; delete and unprotect digests use the live object's uid",
        ),
    ),
  ).action(async (flags: DigestFlags) => {
    const cluster = flags.server ? ClusterClient.connect(kubeConfigOptions(flags)) : undefined;
    const namespace = flags.namespace ?? cluster?.namespace ?? 'default';
    const objects = await readManifests(flags.file, namespace, { stdin: io.stdin, skipped: (what) => err(`skipped: ${what}`) });
    if (objects.length === 0)
      throw new TwokeyError('ERR_MANIFEST_INVALID', `${flags.file} holds no Deployment, StatefulSet, DaemonSet, CronJob or Namespace`);
    for (const m of objects) {
      const action = actionFor(m, flags.action);
      const digest = cluster ? await serverDigest(cluster.client, m, action, flags.fieldManager) : objectDigest(m, action);
      out(`${digest}  ${describeManifest(m)}`);
    }
  });
}
