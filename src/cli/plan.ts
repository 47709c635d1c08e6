/**
 * `twokey plan`: the plan of applying rendered manifests, for people to review and a change
 * system to have approved with one token per approver. With --server each object is dry-run as
 * the real apply would send it, and the digests are the webhook's own; without, the digests are of
 * the files as written.
 */
import { type Command, Option } from 'commander';
import { ClusterClient } from '../cluster/client.ts';
import { planAgainstCluster } from '../cluster/plan.ts';
import { TwokeyError } from '../errors.ts';
import { type ObjectPlan, planFromFiles, readPlanObjects } from '../manifests/plan.ts';
import { type PlanDocument, planDocument } from '../plan/document.ts';
import { type ClusterFlags, kubeConfigOptions, type Terminal, withClusterOptions, withFieldManagerOption } from './common.ts';
import { readManifestInputs } from './inputs.ts';

interface PlanFlags extends ClusterFlags {
  filename: string[];
  namespace?: string;
  server?: boolean;
  output: 'text' | 'json';
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

function objectLine(plan: ObjectPlan): string {
  const { planned, entries } = plan;
  const where = planned.namespace === '' ? planned.name : `${planned.namespace}/${planned.name}`;
  const head = `${planned.resource} ${where} (${planned.operation === 'unknown' ? planned.source : planned.operation})`;
  if (entries.length === 0) return `${head}: ${planned.note ?? 'not gated'}`;
  return [`${head}: gated`, ...entries.map((e) => `  ${e.action} ${e.digest}`)].join('\n');
}

export function registerPlan(program: Command, { out, err, io }: Terminal): void {
  withFieldManagerOption(
    withClusterOptions(
      program
        .command('plan')
        .description(
          'show what applying the manifests changes, which objects are gated and their digests; -o json writes the plan to approve',
        )
        .requiredOption(
          '-f, --filename <path>',
          'manifest file, folder (its .yaml, .yml and .json files) or - for stdin; repeatable',
          collect,
        )
        .option(
          '-n, --namespace <ns>',
          'namespace of namespaced objects that name none, as kubectl apply -n (without it they are an error)',
        )
        .option(
          '--server',
          'dry-run each object against the cluster: digests as the webhook computes them, and a diff against the live object',
        )
        .addOption(
          new Option('-o, --output <format>', 'text for people, json for the plan document').choices(['text', 'json']).default('text'),
        ),
    ),
  ).action(async (flags: PlanFlags) => {
    const inputs = await readManifestInputs(flags.filename, io.stdin);
    const objects = readPlanObjects(inputs, flags.namespace);
    if (objects.length === 0) throw new TwokeyError('ERR_MANIFEST_INVALID', `${flags.filename.join(', ')} holds no Kubernetes object`);
    let plans: ObjectPlan[];
    let source: PlanDocument['source'];
    if (flags.server) {
      const { client } = ClusterClient.connect(kubeConfigOptions(flags));
      plans = await planAgainstCluster(objects, {
        client,
        fieldManager: flags.fieldManager ?? 'kubectl',
        ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
      });
      source = 'cluster';
    } else {
      err(
        'twokey plan: without --server, the digests are of the files as written, without the defaults the API server adds; approvals of them count only if the cluster stores exactly these specs. Plan with --server to get the digests the webhook will compute.',
      );
      plans = planFromFiles(objects);
      source = 'files';
    }
    const entries = plans.flatMap((p) => p.entries);
    if (flags.output === 'json') {
      if (entries.length === 0)
        throw new TwokeyError('ERR_MANIFEST_INVALID', 'nothing in the manifests is gated: there is nothing to approve');
      out(
        JSON.stringify(
          planDocument(
            entries,
            plans.map((p) => p.planned),
            source,
          ),
          null,
          2,
        ),
      );
      return;
    }
    for (const plan of plans) {
      out(objectLine(plan));
      if (plan.planned.diff) out(plan.planned.diff.replace(/\n$/, ''));
    }
    if (entries.length === 0) {
      out('nothing is gated: there is nothing to approve');
      return;
    }
    const document = planDocument(entries, [], source);
    out(
      `plan ${document.digest}: ${entries.length} ${entries.length === 1 ? 'entry' : 'entries'} (digests from ${source === 'cluster' ? "the cluster's dry run" : 'the files as written'}); write it with -o json for twokey approve --plan`,
    );
  });
}
