/**
 * Ways around the rule, tried through the real API server and controllers: a spec change hidden in
 * an owner change, unprotect approvals reused for another handover, owners and labels changed
 * through status and finalize, the namespace controller's identity used outside a namespace
 * deletion, and a critical label that only looks like "true".
 */
import { describe, expect, it } from 'vitest';
import { NAMESPACE_CONTROLLER } from './cluster.ts';
import {
  approvalAnnotations,
  approve,
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

const owner = (name: string, uid: string) => ({ apiVersion: 'v1', kind: 'ConfigMap', name, uid });

/** A Deployment in a critical namespace, made before the namespace became critical (no approvals needed here). */
async function criticalDeployment(prefix: string): Promise<string> {
  const ns = await namespace(prefix, { critical: false });
  await kubectlOk(['apply', '-f', await writeManifest('api', deployment({ namespace: ns }))]);
  await kubectlOk(['label', 'namespace', ns, 'twokey.dev/critical=true']);
  return ns;
}

describe('owners and labels changed through subresources', () => {
  it('refuses an owner given to a critical Deployment through deployments/status (the garbage collector would delete it)', async () => {
    const ns = await criticalDeployment('status-owner');
    const patch = JSON.stringify({ metadata: { ownerReferences: [owner('gone', '5b1e0c9a-0000-4000-8000-0000000000a1')] } });
    const result = await kubectl(['-n', ns, 'patch', 'deployment', 'api', '--subresource=status', '--type=merge', '-p', patch]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /denied the request: twokey: unprotect of deployments\.apps .*\/api \(after the change: critical false, owners ConfigMap\/gone\) refused: 0 of 2/,
    );
    // The Deployment is still there, without the owner, some seconds later.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const live = (await getJson(['-n', ns, 'get', 'deployment', 'api'])) as { metadata: { ownerReferences?: unknown[] } };
    expect(live.metadata.ownerReferences).toBeUndefined();
  });

  it("admits the controllers' own status writes, which never reach twokey", async () => {
    const ns = await criticalDeployment('status-writes');
    const status = await eventually('the deployment controller writing status', async () => {
      const live = (await getJson(['-n', ns, 'get', 'deployment', 'api'])) as { status?: { observedGeneration?: number } };
      return live.status?.observedGeneration;
    });
    expect(status).toBeGreaterThan(0);
  });

  it('refuses the critical label removed from a StatefulSet through statefulsets/status', async () => {
    const ns = await namespace('sts', { critical: false });
    const statefulSet = {
      apiVersion: 'apps/v1',
      kind: 'StatefulSet',
      metadata: { name: 'db', namespace: ns },
      spec: {
        serviceName: 'db',
        selector: { matchLabels: { app: 'db' } },
        template: { metadata: { labels: { app: 'db' } }, spec: { containers: [{ name: 'db', image: 'registry.example/db:1' }] } },
      },
    };
    await kubectlOk(['apply', '-f', await writeManifest('db', statefulSet)]);
    await kubectlOk(['-n', ns, 'label', 'statefulset', 'db', 'twokey.dev/critical=true']);
    const result = await kubectl([
      '-n',
      ns,
      'patch',
      'statefulset',
      'db',
      '--subresource=status',
      '--type=json',
      '-p',
      '[{"op":"remove","path":"/metadata/labels/twokey.dev~1critical"}]',
    ]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /admission webhook "labeled-workloads\.twokey\.dev" denied the request: twokey: unprotect of statefulsets\.apps .*\/db/,
    );
  });

  it.each(['status', 'finalize'])('refuses the critical label removed from a Namespace through namespaces/%s', async (subresource) => {
    const ns = await namespace(`ns-${subresource}`);
    const live = (await getJson(['get', 'namespace', ns])) as { metadata: { labels: Record<string, string> } };
    const { 'twokey.dev/critical': _removed, ...labels } = live.metadata.labels;
    // --raw sends the file as it is: JSON.
    const file = await writeManifest('ns', JSON.stringify({ ...live, metadata: { ...live.metadata, labels } }));
    const result = await kubectl(['replace', '--raw', `/api/v1/namespaces/${ns}/${subresource}`, '-f', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/admission webhook "namespaces\.twokey\.dev" denied the request: twokey: unprotect of namespaces /);
    const after = (await getJson(['get', 'namespace', ns])) as { metadata: { labels: Record<string, string> } };
    expect(after.metadata.labels['twokey.dev/critical']).toBe('true');
  });
});

describe('one request, every gated aspect', () => {
  it('refuses a new image handed over with a new owner on unprotect approvals alone, and says each digest', async () => {
    const ns = await criticalDeployment('combined');
    const live = (await getJson(['-n', ns, 'get', 'deployment', 'api'])) as { metadata: { uid: string } };
    const changed = deployment({ namespace: ns, image: 'registry.example/api:6.6.6' });
    (changed.metadata as Record<string, unknown>).ownerReferences = [owner('platform', live.metadata.uid.replace(/.$/, 'f'))];
    const file = await writeManifest('combined', changed);
    const refused = await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', file]);
    expect(refused.stderr).toMatch(
      /twokey: deploy\+unprotect of deployments\.apps .*\/api refused: this one request is a deploy and an unprotect/,
    );
    const deployDigest = (await twokey(['digest', '--server', '--action', 'deploy', '-f', file])).stdout.split(' ')[0] as string;
    const unprotectDigest = (await twokey(['digest', '--server', '--action', 'unprotect', '-f', file])).stdout.split(' ')[0] as string;
    expect(refused.stderr).toContain(`The deploy needs approvals bound to digest ${deployDigest}`);
    expect(refused.stderr).toContain(`The unprotect needs approvals bound to digest ${unprotectDigest}`);

    const unprotectOnly = {
      bob: await approve({ approver: 'bob', action: 'unprotect', digest: unprotectDigest, file }),
      carol: await approve({ approver: 'carol', action: 'unprotect', digest: unprotectDigest, file }),
    };
    const withUnprotect = { ...changed, metadata: { ...(changed.metadata as object), annotations: approvalAnnotations(unprotectOnly) } };
    const stillRefused = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--dry-run=server',
      '-f',
      await writeManifest('combined-u', withUnprotect),
    ]);
    expect(stillRefused.code).toBe(1);
    expect(stillRefused.stderr).toMatch(/The deploy needs approvals bound to digest sha256:[0-9a-f]{64}: 0 of 2/);

    const both = {
      ...approvalAnnotations(unprotectOnly),
      'approval.twokey.dev/bob-deploy': await approve({ approver: 'bob', digest: deployDigest, file }),
      'approval.twokey.dev/carol-deploy': await approve({ approver: 'carol', digest: deployDigest, file }),
    };
    const withBoth = { ...changed, metadata: { ...(changed.metadata as object), annotations: both } };
    const admitted = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--dry-run=server',
      '-f',
      await writeManifest('combined-b', withBoth),
    ]);
    expect(admitted.code, admitted.stderr).toBe(0);
  });

  it('does not let the approvals of one owner handover approve another', async () => {
    const ns = await criticalDeployment('handover');
    // Owners that exist: the garbage collector deletes an object whose owners are gone.
    const owners: Record<string, string> = {};
    for (const name of ['owner-x', 'owner-y']) {
      await kubectlOk(['-n', ns, 'create', 'configmap', name]);
      owners[name] = ((await getJson(['-n', ns, 'get', 'configmap', name])) as { metadata: { uid: string } }).metadata.uid;
    }
    const withOwner = (name: string, annotations?: Record<string, string>) => {
      const object = deployment({ namespace: ns, ...(annotations ? { annotations } : {}) });
      (object.metadata as Record<string, unknown>).ownerReferences = [owner(name, owners[name] as string)];
      return object;
    };
    const first = await writeManifest('handover-x', withOwner('owner-x'));
    const digest = digestIn((await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', first])).stderr);
    const tokens = {
      bob: await approve({ approver: 'bob', action: 'unprotect', digest, file: first }),
      carol: await approve({ approver: 'carol', action: 'unprotect', digest, file: first }),
    };
    const handedOver = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      await writeManifest('x-ok', withOwner('owner-x', approvalAnnotations(tokens))),
    ]);
    expect(handedOver.code, handedOver.stderr).toBe(0);

    // The approvals stay on the object; another owner needs approvals of its own.
    const refused = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '-f',
      await writeManifest('y', withOwner('owner-y', approvalAnnotations(tokens))),
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /unprotect of deployments\.apps .*\/api \(after the change: critical false, owners ConfigMap\/owner-y\) refused: 0 of 2/,
    );
  });
});

describe("the namespace controller's identity", () => {
  it('may not delete a critical workload in a namespace that is not being deleted', async () => {
    const ns = await criticalDeployment('not-deleting');
    const result = await kubectl(['--as', NAMESPACE_CONTROLLER, '-n', ns, 'delete', 'deployment', 'api', '--dry-run=server']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      new RegExp(
        `twokey: delete of deployments\\.apps ${ns}/api refused: 0 of 2 required approvals\\. .*"${NAMESPACE_CONTROLLER}" \\(making this request\\)`,
      ),
    );
  });
});

describe('a critical label that only looks like "true"', () => {
  it('is admitted with a warning kubectl prints', async () => {
    const ns = await namespace('lookalike', { critical: false });
    const file = await writeManifest('mislabelled', deployment({ namespace: ns, labels: { 'twokey.dev/critical': 'True' } }));
    const result = await kubectl(['apply', '-f', file]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe(
      'Warning: twokey: label twokey.dev/critical is "True", not "true": it does not make this Deployment critical\n',
    );
    const namespaceResult = await kubectl(['label', 'namespace', ns, 'twokey.dev/critical=yes']);
    expect(namespaceResult.stderr).toBe(
      'Warning: twokey: label twokey.dev/critical is "yes", not "true": it does not make this Namespace critical\n',
    );
  });
});
