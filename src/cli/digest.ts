/**
 * `twokey digest`: the change digest of each gated object in a manifest.
 */
import { type Command, Option } from 'commander';
import { ACTIONS, type Action, type ChangeTarget, deploySpec, digestOf } from '../decision/digest.ts';
import { TwokeyError } from '../errors.ts';
import { isJsonObject, qualifiedResource } from '../kubernetes/objects.ts';
import { err, out } from './common.ts';
import { type ManifestObject, readManifests } from './manifests.ts';

/** Deploys are what one approves for workloads; a Namespace is only ever deleted or unprotected. */
export function defaultAction(m: ManifestObject): Action {
  return m.resource.resource === 'namespaces' ? 'delete' : 'deploy';
}

export function targetOf(m: ManifestObject): ChangeTarget {
  return { resource: qualifiedResource(m.resource), namespace: m.namespace, name: m.name };
}

/** The digest of a manifest object for an action; delete and unprotect need the live object's uid. */
export function manifestDigest(m: ManifestObject, action: Action): string {
  const target = targetOf(m);
  if (action === 'deploy') return digestOf({ ...target, action, spec: deploySpec(m.object) });
  const metadata = isJsonObject(m.object.metadata) ? m.object.metadata : {};
  const uid = typeof metadata.uid === 'string' ? metadata.uid : '';
  if (uid === '') {
    throw new TwokeyError(
      'ERR_MANIFEST_INVALID',
      `${target.resource} ${target.namespace}/${target.name} has no metadata.uid: a ${action} digest binds the live object's uid (use the output of kubectl get -o yaml)`,
    );
  }
  return digestOf({ ...target, action, uid });
}

interface DigestFlags {
  file: string;
  action?: Action;
  namespace: string;
}

export function registerDigest(program: Command): void {
  program
    .command('digest')
    .description('print the change digest of each gated object: sha256:<hex>  <resource> <namespace>/<name>')
    .requiredOption('-f, --file <file>', 'manifest file (YAML or JSON, several documents allowed), or - for stdin')
    .addOption(new Option('--action <action>', 'which change to digest (default: deploy; delete for Namespaces)').choices(ACTIONS))
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one', 'default')
    .action(async (flags: DigestFlags) => {
      const objects = await readManifests(flags.file, flags.namespace, (what) => err(`skipped: ${what}`));
      if (objects.length === 0)
        throw new TwokeyError('ERR_MANIFEST_INVALID', `${flags.file} holds no Deployment, StatefulSet, DaemonSet, CronJob or Namespace`);
      for (const m of objects) {
        const action = flags.action ?? defaultAction(m);
        if (action === 'deploy' && m.resource.resource === 'namespaces') {
          throw new TwokeyError(
            'ERR_MANIFEST_INVALID',
            `Namespace ${m.name}: a namespace is not deployed; use --action delete or unprotect`,
          );
        }
        out(`${manifestDigest(m, action)}  ${qualifiedResource(m.resource)} ${m.namespace}/${m.name}`);
      }
    });
}
