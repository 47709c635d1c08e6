/**
 * Deletions through the real API server and the real controllers: a critical namespace deleted by
 * the agent, then emptied and removed by the namespace controller (its deletes of the critical
 * workloads inside never refused, the namespace never stuck Terminating), approvals that do not
 * carry over to a namespace recreated under the same name, a workload critical by its own label
 * whose deletion waits for its own approvals however its namespace is relabelled, and cascading
 * deletes whose garbage collection is never refused.
 */
import { describe, expect, it } from 'vitest';
import { GARBAGE_COLLECTOR, NAMESPACE_CONTROLLER } from './cluster.ts';
import {
  approvalAnnotations,
  approve,
  decisions,
  deployment,
  digestIn,
  eventually,
  getJson,
  kubectl,
  kubectlOk,
  namespace,
  twokey,
  writeManifest,
} from './support.ts';

const asAgent = (args: readonly string[]) => kubectl(['--context', 'agent', ...args]);

/** Deployments made before their namespace became critical, so they need no approvals here. */
async function criticalNamespaceWith(prefix: string, names: readonly string[]): Promise<string> {
  const ns = await namespace(prefix, { critical: false });
  for (const name of names) await kubectlOk(['apply', '-f', await writeManifest(name, deployment({ name, namespace: ns }))]);
  await kubectlOk(['label', 'namespace', ns, 'twokey.dev/critical=true']);
  return ns;
}

async function annotateApprovals(kind: string, name: string, ns: string | undefined, tokens: Record<string, string>): Promise<void> {
  const annotations = Object.entries(approvalAnnotations(tokens)).map(([key, value]) => `${key}=${value}`);
  await kubectlOk(['annotate', kind, name, ...(ns ? ['-n', ns] : []), '--overwrite', ...annotations]);
}

describe('deleting a critical namespace', () => {
  it('is refused to the agent without approvals, then admitted with two, and the namespace controller empties and removes it', async () => {
    const ns = await criticalNamespaceWith('payments', ['api', 'ledger']);
    const refused = await asAgent(['delete', 'namespace', ns, '--wait=false']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      `Error from server (Forbidden): admission webhook "namespaces.twokey.dev" denied the request: ${refused.stderr.slice(refused.stderr.indexOf('twokey: '))}`,
    );
    expect(refused.stderr).toMatch(
      new RegExp(
        `twokey: delete of namespaces ${ns} refused: 0 of 2 required approvals\\. .*"system:serviceaccount:ci:agent" \\(making this request\\)`,
      ),
    );
    const digest = digestIn(refused.stderr);
    const nsFile = await writeManifest('namespace', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
    expect((await twokey(['digest', '--server', '--action', 'delete', '-f', nsFile])).stdout).toBe(`${digest}  namespaces ${ns}\n`);

    const tokens = {
      bob: await approve({ approver: 'bob', action: 'delete', digest, file: nsFile }),
      carol: await approve({ approver: 'carol', action: 'delete', digest, file: nsFile }),
    };
    // Attaching approvals is a metadata-only update: not gated, even for the agent.
    expect(
      (await asAgent(['annotate', 'namespace', ns, ...Object.entries(approvalAnnotations(tokens)).map(([k, v]) => `${k}=${v}`)])).code,
    ).toBe(0);
    const deleted = await asAgent(['delete', 'namespace', ns, '--wait=false']);
    expect(deleted).toMatchObject({ code: 0, stdout: `namespace "${ns}" deleted\n` });

    const started = Date.now();
    await eventually('the namespace gone', async () => (await kubectl(['get', 'namespace', ns])).code === 1, 120_000);
    expect(Date.now() - started).toBeLessThan(120_000);
    const cleanup = decisions().filter((d) => d.namespace === ns && d.user === NAMESPACE_CONTROLLER && d.operation === 'DELETE');
    expect(cleanup.map((d) => [d.name, d.verdict]).sort()).toEqual(
      expect.arrayContaining([
        ['api', 'admitted'],
        ['ledger', 'admitted'],
      ]),
    );
    expect(
      decisions().filter((d) => d.namespace === ns && d.verdict === 'refused' && !d.dryRun && d.user !== 'system:serviceaccount:ci:agent'),
    ).toEqual([]);

    // The same approvals on a namespace recreated under the same name approve nothing.
    await kubectlOk(['create', 'namespace', ns]);
    await kubectlOk(['label', 'namespace', ns, 'twokey.dev/critical=true']);
    await annotateApprovals('namespace', ns, undefined, tokens);
    const again = await asAgent(['delete', 'namespace', ns, '--wait=false']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/refused: 0 of 2 required approvals\. .*Not counted: approval\.twokey\.dev\/bob: bound to another change/);
  });
});

describe('a workload critical by its own label in a namespace that is not critical', () => {
  it('keeps its deletion waiting for its own approvals, even once someone tries to make the terminating namespace critical', async () => {
    const ns = await namespace('late-label', { critical: false });
    const file = await writeManifest('api', deployment({ namespace: ns }));
    await kubectlOk(['apply', '-f', file]);
    await kubectlOk(['label', 'deployment', 'api', '-n', ns, 'twokey.dev/critical=true']);

    // Not critical: the agent deletes the namespace, and the namespace controller's delete of api is refused.
    expect((await asAgent(['delete', 'namespace', ns, '--wait=false'])).code).toBe(0);
    await eventually('the cleanup of api refused', async () =>
      decisions().some((d) => d.namespace === ns && d.name === 'api' && d.user === NAMESPACE_CONTROLLER && d.verdict === 'refused'),
    );
    // Labelling the terminating namespace critical would exempt that delete: refused.
    const label = await asAgent(['label', 'namespace', ns, 'twokey.dev/critical=true']);
    expect(label.code).toBe(1);
    expect(label.stderr).toContain(
      `admission webhook "namespaces.twokey.dev" denied the request: twokey: cannot judge this request: namespace "${ns}" is being deleted, and was not critical when its deletion began: it cannot be made critical now.`,
    );
    expect((await kubectl(['get', 'deployment', 'api', '-n', ns])).code).toBe(0);

    // Approvals of api's own deletion let the namespace controller's next retry through.
    const digest = (await twokey(['digest', '--server', '--action', 'delete', '-f', file])).stdout.split(' ')[0] as string;
    const tokens = {
      bob: await approve({ approver: 'bob', action: 'delete', digest, file }),
      carol: await approve({ approver: 'carol', action: 'delete', digest, file }),
    };
    await annotateApprovals('deployment', 'api', ns, tokens);
    await eventually('the namespace gone', async () => (await kubectl(['get', 'namespace', ns])).code === 1, 180_000);
  });
});

describe('deleting an approved critical Deployment', () => {
  it.each(['background', 'foreground'])('with %s cascade: the garbage collector finishes it, never refused', async (cascade) => {
    const ns = await criticalNamespaceWith('cascade', ['api']);
    await eventually(
      'its ReplicaSet',
      async () => ((await getJson(['get', 'replicasets', '-n', ns])) as { items: unknown[] }).items.length === 1,
    );
    const refused = await kubectl(['delete', 'deployment', 'api', '-n', ns, '--dry-run=server']);
    expect(refused.code).toBe(1);
    const digest = digestIn(refused.stderr);
    const live = await writeManifest('live', await kubectlOk(['get', 'deployment', 'api', '-n', ns, '-o', 'yaml']));
    const tokens = {
      bob: await approve({ approver: 'bob', action: 'delete', digest, file: live }),
      carol: await approve({ approver: 'carol', action: 'delete', digest, file: live }),
    };
    await annotateApprovals('deployment', 'api', ns, tokens);
    const deleted = await kubectl(['delete', 'deployment', 'api', '-n', ns, `--cascade=${cascade}`, '--wait=false']);
    expect(deleted).toMatchObject({ code: 0, stdout: `deployment.apps "api" deleted from ${ns} namespace\n` });
    await eventually('the Deployment and its ReplicaSet gone', async () => {
      const left = (await getJson(['get', 'deployments,replicasets', '-n', ns])) as { items: unknown[] };
      return left.items.length === 0;
    });
    const collector = decisions().filter((d) => d.namespace === ns && d.user === GARBAGE_COLLECTOR);
    expect(collector.filter((d) => d.verdict === 'refused')).toEqual([]);
  });
});
