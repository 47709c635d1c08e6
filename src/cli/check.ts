/**
 * `twokey check`: the verdict the webhook would give for a manifest, judged by the same decision
 * function the server runs; offline from the files alone, or with --server against the live
 * objects and namespaces of a cluster.
 */
import { userInfo } from 'node:os';
import { type Command, Option } from 'commander';
import { ClusterClient } from '../cluster/client.ts';
import { loadSnapshot } from '../config/store.ts';
import { decide } from '../decision/decide.ts';
import type { NamespaceDeletion, NamespaceState, NamespaceView } from '../decision/gate.ts';
import type { Decision } from '../decision/wording.ts';
import type { JsonObject } from '../json.ts';
import type { Operation } from '../kubernetes/admission.ts';
import { toAdmissionRequest } from '../kubernetes/admission.ts';
import { hasCriticalLabel, NAMESPACES, qualifiedResource, readMeta } from '../kubernetes/objects.ts';
import { buildAdmissionReview } from '../kubernetes/review-builder.ts';
import {
  type ClusterFlags,
  EXIT,
  kubeConfigOptions,
  type Terminal,
  usageError,
  withClusterOptions,
  withFieldManagerOption,
} from './common.ts';
import { describeManifest, type ManifestObject, readManifests } from './manifests.ts';

interface CheckFlags extends ClusterFlags {
  config: string;
  file: string;
  old?: string;
  user?: string;
  operation?: Operation;
  namespace?: string;
  critical?: boolean;
  output: 'text' | 'json';
  server?: boolean;
}

const key = (m: ManifestObject) => `${qualifiedResource(m.resource)} ${m.namespace}/${m.name}`;

/**
 * Namespaces in the given manifests that carry the critical label, as the cluster would know them.
 * Whether a namespace's deletion has begun is not for files to say.
 */
function manifestNamespaces(objects: readonly ManifestObject[]): NamespaceView {
  const critical = new Set(
    objects.filter((m) => m.resource.resource === 'namespaces' && hasCriticalLabel(readMeta(m.object).labels)).map((m) => m.name),
  );
  return { criticality: (namespace) => (critical.has(namespace) ? 'critical' : 'not-critical'), deletion: () => 'unknown' };
}

/** The live labels and deletion state of the namespaces involved, as the webhook's namespace watch sees them. */
async function clusterNamespaces(client: ClusterClient, names: Iterable<string>): Promise<NamespaceView> {
  const states = new Map<string, { criticality: NamespaceState; deletion: NamespaceDeletion }>();
  for (const name of new Set(names)) {
    if (name === '') continue;
    const ns = await client.read(NAMESPACES, '', name);
    const meta = ns === undefined ? undefined : readMeta(ns);
    states.set(
      name,
      meta === undefined
        ? { criticality: 'unknown', deletion: 'unknown' }
        : {
            criticality: hasCriticalLabel(meta.labels) ? 'critical' : 'not-critical',
            deletion: meta.deletionTimestamp !== '' ? 'deleting' : 'active',
          },
    );
  }
  return {
    criticality: (namespace) => states.get(namespace)?.criticality ?? 'unknown',
    deletion: (namespace) => states.get(namespace)?.deletion ?? 'unknown',
  };
}

export function webhookNameFor(m: ManifestObject): string {
  return m.resource.resource === 'namespaces' ? 'namespaces.twokey.dev' : 'workloads.twokey.dev';
}

const VERB: Record<string, string> = { CREATE: 'creating', UPDATE: 'applying', DELETE: 'deleting' };

interface Judgement {
  readonly object: string;
  readonly verdict?: Decision;
  /** The cluster's own refusal of the dry run, when twokey in the cluster refused it. */
  readonly clusterRefusal?: string;
}

/** A verdict as `-o json` prints it: its facts, its words, and each approval's report (undefined members are left out). */
function verdictJson(object: string, decision: Decision) {
  const { allowed, action, target, aspects, digest, change, approvers, summary, message, warnings, auditAnnotations } = decision;
  const facts = { allowed, action, target, aspects, digest, change, approvers, summary, message, warnings, auditAnnotations };
  const approvals = decision.approvals.map((r) => ({
    key: r.key,
    approver: r.approver,
    change: r.change,
    expiresAt: r.expiresAt,
    status: r.status,
    code: r.code,
    detail: r.detail,
    unknownKidOf: r.unknownKidOf,
    copyOf: r.copyOf,
    action: r.action,
  }));
  return { object, ...facts, approvals, breakGlass: decision.breakGlass, wouldRefuse: decision.wouldRefuse };
}

export function registerCheck(program: Command, terminal: Terminal): void {
  const { out, err, io } = terminal;
  withFieldManagerOption(
    withClusterOptions(
      program
        .command('check')
        .description('print the verdict the webhook would give for the objects in FILE (exit 0 admitted, 1 refused, 2 bad input)')
        .requiredOption('--config <policy>', 'the policy file')
        .requiredOption(
          '-f, --file <file>',
          'the object(s) as they would be sent: new objects, or the objects deleted with --operation DELETE',
        )
        .option('--old <file>', 'the objects as they are now (makes the default operation UPDATE)')
        .option(
          '--user <name>',
          'the Kubernetes user making the change (default: the current OS user; with --server, who the cluster says you are)',
        )
        .addOption(
          new Option('--operation <op>', 'CREATE, UPDATE or DELETE (default: CREATE, or UPDATE with --old or a live object)').choices([
            'CREATE',
            'UPDATE',
            'DELETE',
          ]),
        )
        .option(
          '-n, --namespace <ns>',
          'namespace for objects that do not name one (default: "default", or the context namespace with --server)',
        )
        .option('--critical', 'judge as the /validate/critical route does: the namespace is critical')
        .option(
          '--server',
          "judge against the cluster: the live object is the old one, the new one is the server's dry run, namespaces are critical by their live labels",
        )
        .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text')),
    ),
  ).action(async (flags: CheckFlags) => {
    if (flags.server && flags.old) throw usageError('--old and --server exclude each other: with --server the live object is the old one');
    if (!flags.server && flags.operation === 'UPDATE' && !flags.old)
      throw usageError('--operation UPDATE needs --old with the current objects');
    if (flags.old && flags.operation && flags.operation !== 'UPDATE') throw usageError(`--old is only for UPDATE, not ${flags.operation}`);
    const cluster = flags.server ? ClusterClient.connect(kubeConfigOptions(flags)) : undefined;
    const namespace = flags.namespace ?? cluster?.namespace ?? 'default';
    const objects = await readManifests(flags.file, namespace, { stdin: io.stdin, skipped: (what) => err(`skipped: ${what}`) });
    const olds = flags.old ? await readManifests(flags.old, namespace, { stdin: io.stdin }) : [];
    if (objects.length === 0) throw usageError(`${flags.file} holds no Deployment, StatefulSet, DaemonSet, CronJob or Namespace`);
    const oldByKey = new Map(olds.map((m) => [key(m), m]));
    const snapshot = await loadSnapshot(flags.config, (message) => err(`warning: ${message}`));
    const username = flags.user ?? (cluster ? await cluster.client.whoAmI() : undefined) ?? userInfo().username;
    const namespaces = cluster
      ? await clusterNamespaces(
          cluster.client,
          objects.map((m) => m.namespace),
        )
      : manifestNamespaces([...objects, ...olds]);
    const source = flags.file === '-' ? 'STDIN' : flags.file;

    const results: Judgement[] = [];
    for (const m of objects) {
      let operation: Operation;
      let object: JsonObject | null = m.object;
      let oldObject: JsonObject | null = null;
      if (cluster) {
        const live = await cluster.client.read(m.resource, m.namespace, m.name);
        operation = flags.operation ?? (live ? 'UPDATE' : 'CREATE');
        if (operation !== 'CREATE' && !live)
          throw usageError(
            `${describeManifest(m)} does not exist in the cluster, so it cannot be ${operation === 'DELETE' ? 'deleted' : 'updated'}`,
          );
        oldObject = operation === 'CREATE' ? null : (live ?? null);
        if (operation === 'DELETE') object = null;
        else {
          const dryRun = await cluster.client.dryRunApply(m.resource, m.namespace, m.name, m.object, flags.fieldManager);
          if (dryRun.kind === 'refused') {
            if (!dryRun.byTwokey) throw usageError(`the cluster refused the dry run of ${describeManifest(m)}: ${dryRun.message}`);
            results.push({ object: describeManifest(m), clusterRefusal: dryRun.message });
            if (flags.output === 'text') out(`Error from server (Forbidden): error when ${VERB[operation]} "${source}": ${dryRun.message}`);
            continue;
          }
          object = dryRun.object;
        }
      } else {
        operation = flags.operation ?? (flags.old ? 'UPDATE' : 'CREATE');
        if (operation === 'UPDATE') {
          const old = oldByKey.get(key(m));
          if (!old) throw usageError(`--old holds no ${describeManifest(m)}`);
          oldObject = old.object;
        } else if (operation === 'DELETE') {
          oldObject = m.object;
          object = null;
        }
      }
      const review = buildAdmissionReview({ operation, object, oldObject, username });
      const verdict = await decide(toAdmissionRequest(review), {
        ...snapshot,
        namespaces,
        forceCritical: flags.critical ?? false,
        now: Date.now() / 1000,
      });
      results.push({ object: describeManifest(m), verdict });
      if (flags.output === 'text') {
        for (const warning of verdict.warnings) out(`Warning: ${warning}`);
        if (verdict.allowed) out(`${describeManifest(m)}: admitted (${verdict.summary})`);
        else
          out(
            `Error from server (Forbidden): error when ${VERB[operation]} "${source}": admission webhook "${webhookNameFor(m)}" denied the request: ${verdict.message}`,
          );
      }
    }
    if (flags.output === 'json') {
      out(
        JSON.stringify(
          results.map(({ object, verdict, clusterRefusal }) =>
            verdict ? verdictJson(object, verdict) : { object, allowed: false, message: clusterRefusal },
          ),
          null,
          2,
        ),
      );
    }
    terminal.exitCode = results.every((r) => r.verdict?.allowed === true) ? EXIT.ok : EXIT.refused;
  });
}
