/**
 * `twokey check`: the verdict the webhook would give for a manifest, judged offline by the same
 * decision function the server runs.
 */
import { userInfo } from 'node:os';
import { type Command, Option } from 'commander';
import { loadSnapshot } from '../config/store.ts';
import { decide } from '../decision/decide.ts';
import type { NamespaceView } from '../decision/gate.ts';
import type { Verdict } from '../decision/verdict.ts';
import type { Operation } from '../kubernetes/admission.ts';
import { toAdmissionRequest } from '../kubernetes/admission.ts';
import { hasCriticalLabel, qualifiedResource, readMeta } from '../kubernetes/objects.ts';
import { buildAdmissionReview } from '../kubernetes/review-builder.ts';
import { EXIT, err, out, usageError } from './common.ts';
import { describeManifest, type ManifestObject, readManifests } from './manifests.ts';

interface CheckFlags {
  config: string;
  file: string;
  old?: string;
  user?: string;
  operation?: Operation;
  namespace: string;
  critical?: boolean;
  output: 'text' | 'json';
}

const key = (m: ManifestObject) => `${qualifiedResource(m.resource)} ${m.namespace}/${m.name}`;

/** Namespaces in the given manifests that carry the critical label, as the cluster would know them. */
function manifestNamespaces(objects: readonly ManifestObject[]): NamespaceView {
  const critical = new Set(
    objects.filter((m) => m.resource.resource === 'namespaces' && hasCriticalLabel(readMeta(m.object).labels)).map((m) => m.name),
  );
  return { criticality: (namespace) => (critical.has(namespace) ? 'critical' : 'not-critical') };
}

export function webhookNameFor(m: ManifestObject): string {
  return m.resource.resource === 'namespaces' ? 'namespaces.twokey.dev' : 'workloads.twokey.dev';
}

const VERB: Record<string, string> = { CREATE: 'creating', UPDATE: 'applying', DELETE: 'deleting' };

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description('print the verdict the webhook would give for the objects in FILE (exit 0 admitted, 1 refused, 2 bad input)')
    .requiredOption('--config <policy>', 'the policy file')
    .requiredOption('-f, --file <file>', 'the object(s) as they would be sent: new objects, or the objects deleted with --operation DELETE')
    .option('--old <file>', 'the objects as they are now (makes the default operation UPDATE)')
    .option('--user <name>', 'the Kubernetes user making the change (default: the current OS user)')
    .addOption(
      new Option('--operation <op>', 'CREATE, UPDATE or DELETE (default: CREATE, or UPDATE with --old)').choices([
        'CREATE',
        'UPDATE',
        'DELETE',
      ]),
    )
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one', 'default')
    .option('--critical', 'judge as the /validate/critical route does: the namespace is critical')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (flags: CheckFlags) => {
      const operation: Operation = flags.operation ?? (flags.old ? 'UPDATE' : 'CREATE');
      if (operation === 'UPDATE' && !flags.old) throw usageError('--operation UPDATE needs --old with the current objects');
      if (operation !== 'UPDATE' && flags.old) throw usageError(`--old is only for UPDATE, not ${operation}`);
      const username = flags.user ?? userInfo().username;
      const objects = await readManifests(flags.file, flags.namespace, (what) => err(`skipped: ${what}`));
      const olds = flags.old ? await readManifests(flags.old, flags.namespace) : [];
      if (objects.length === 0) throw usageError(`${flags.file} holds no Deployment, StatefulSet, DaemonSet, CronJob or Namespace`);
      const oldByKey = new Map(olds.map((m) => [key(m), m]));
      const snapshot = await loadSnapshot(flags.config, (message) => err(`warning: ${message}`));
      const namespaces = manifestNamespaces([...objects, ...olds]);

      const results: Array<{ object: string; verdict: Verdict }> = [];
      for (const m of objects) {
        const old = operation === 'UPDATE' ? oldByKey.get(key(m)) : undefined;
        if (operation === 'UPDATE' && !old) throw usageError(`--old holds no ${describeManifest(m)}`);
        const review = buildAdmissionReview({
          operation,
          object: operation === 'DELETE' ? null : m.object,
          oldObject: operation === 'DELETE' ? m.object : (old?.object ?? null),
          username,
        });
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
          else {
            const source = flags.file === '-' ? 'STDIN' : flags.file;
            out(
              `Error from server (Forbidden): error when ${VERB[operation]} "${source}": admission webhook "${webhookNameFor(m)}" denied the request: ${verdict.message}`,
            );
          }
        }
      }
      if (flags.output === 'json') {
        out(
          JSON.stringify(
            results.map(({ object, verdict }) => ({ object, ...verdict })),
            null,
            2,
          ),
        );
      }
      process.exitCode = results.every((r) => r.verdict.allowed) ? EXIT.ok : EXIT.refused;
    });
}
