/**
 * Deploys of a critical Deployment through the real kube-apiserver, as a person types them with
 * the real kubectl: the dry-run refusal and its digest, approvals attached, and every way kubectl
 * changes a Deployment judged as the README says.
 */
import { chmod, writeFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
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

describe('a critical Deployment, deployed with kubectl', () => {
  let ns: string;
  let file: string;
  let digest: string;

  beforeAll(async () => {
    ns = await namespace('payments');
    file = await writeManifest('api', deployment({ namespace: ns }));
  });

  it('is refused on a server-side dry run, naming the digest twokey digest --server predicts', async () => {
    const dryRun = await kubectl(['apply', '--dry-run=server', '-f', file]);
    expect(dryRun.code).toBe(1);
    expect(dryRun.stdout).toBe('');
    expect(dryRun.stderr).toMatch(
      new RegExp(
        `^Error from server \\(Forbidden\\): error when creating "${file}": admission webhook "workloads.twokey.dev" denied the request: twokey: deploy of deployments.apps ${ns}/api refused: 0 of 2 required approvals\\. .*bound to digest sha256:[0-9a-f]{64}\\..*\\n$`,
      ),
    );
    digest = digestIn(dryRun.stderr);

    const predicted = await twokey(['digest', '--server', '-f', file]);
    expect(predicted).toMatchObject({ code: 0, stdout: `${digest}  deployments.apps ${ns}/api\n` });
    // The webhook's own records of the dry runs it judged: kubectl's, refused, and the planned one of digest --server.
    const judged = decisions().filter((d) => d.name === 'api' && d.namespace === ns && d.dryRun);
    expect(new Set(judged.map((d) => d.verdict))).toEqual(new Set(['refused', 'admitted']));
    expect(judged.every((d) => d.digest === digest)).toBe(true);
  });

  it('is admitted with two approvals bound to that digest, and the deployment controller rolls it out', async () => {
    const tokens = {
      bob: await approve({ approver: 'bob', digest, file }),
      carol: await approve({ approver: 'carol', digest, file }),
    };
    await writeFile(file, stringify(deployment({ namespace: ns, annotations: approvalAnnotations(tokens) })));
    const applied = await kubectl(['apply', '-f', file]);
    expect(applied.stderr).toBe('');
    expect(applied).toMatchObject({ code: 0, stdout: `deployment.apps/api created\n` });
    const replicaSets = await eventually('a ReplicaSet', async () => {
      const list = (await getJson(['get', 'replicasets', '-n', ns, '-l', 'app=api'])) as { items: unknown[] };
      return list.items.length === 1 ? list.items : undefined;
    });
    expect(replicaSets).toHaveLength(1);
  });

  it('refuses kubectl set image', async () => {
    const result = await kubectl(['set', 'image', 'deployment/api', 'api=registry.example/api:2.0', '-n', ns]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /admission webhook "workloads.twokey.dev" denied the request: twokey: deploy of deployments.apps .*\/api refused/,
    );
  });

  it('admits kubectl scale (the scale subresource is not a deploy)', async () => {
    expect(await kubectl(['scale', 'deployment/api', '--replicas=5', '-n', ns])).toMatchObject({ code: 0, stderr: '' });
    const scaled = (await getJson(['get', 'deployment', 'api', '-n', ns])) as { spec: { replicas: number } };
    expect(scaled.spec.replicas).toBe(5);
  });

  it('refuses kubectl rollout restart', async () => {
    const result = await kubectl(['rollout', 'restart', 'deployment/api', '-n', ns]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused: 0 of 2/);
  });

  it('admits kubectl annotate (metadata only)', async () => {
    expect(await kubectl(['annotate', 'deployment/api', 'team=payments', '-n', ns])).toMatchObject({ code: 0, stderr: '' });
  });

  it('judges server-side apply, replace, JSON patch and edit as deploys', async () => {
    const changed = deployment({ namespace: ns, image: 'registry.example/api:6.6.6' });
    const changedFile = await writeManifest('api-changed', changed);
    const serverSide = await kubectl(['apply', '--server-side', '--force-conflicts', '-f', changedFile]);
    expect(serverSide.code).toBe(1);
    expect(serverSide.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused/);

    const live = await getJson(['get', 'deployment', 'api', '-n', ns]);
    const replaced = structuredClone(live) as { spec: { template: { spec: { containers: Array<{ image: string }> } } } };
    (replaced.spec.template.spec.containers[0] as { image: string }).image = 'registry.example/api:6.6.6';
    const replaceFile = await writeManifest('api-replace', replaced);
    const replace = await kubectl(['replace', '-f', replaceFile]);
    expect(replace.code).toBe(1);
    expect(replace.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused/);

    const patch = await kubectl([
      'patch',
      'deployment',
      'api',
      '-n',
      ns,
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/api:6.6.6"}]',
    ]);
    expect(patch.code).toBe(1);
    expect(patch.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused/);

    const editor = await writeManifest('editor', '#!/bin/sh\nsed -i "s#registry.example/api:1.0#registry.example/api:6.6.6#" "$1"\n');
    await chmod(editor, 0o755);
    const edit = await kubectl(['edit', 'deployment', 'api', '-n', ns], { env: { KUBE_EDITOR: editor, EDITOR: editor } });
    expect(edit.code).toBe(1);
    expect(edit.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused/);

    expect(await imageOf(ns, 'api')).toBe('registry.example/api:1.0');
  });

  it('admits a server-side apply of a new version with approvals bound to its digest', async () => {
    const v2File = await writeManifest('api-v2', deployment({ namespace: ns, image: 'registry.example/api:2.0' }));
    const refused = await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', v2File]);
    const v2Digest = digestIn(refused.stderr);
    expect((await twokey(['digest', '--server', '-f', v2File])).stdout).toBe(`${v2Digest}  deployments.apps ${ns}/api\n`);
    const tokens = {
      bob: await approve({ approver: 'bob', change: 'CHG-V2', digest: v2Digest, file: v2File }),
      carol: await approve({ approver: 'carol', change: 'CHG-V2', digest: v2Digest, file: v2File }),
    };
    const approvedFile = await writeManifest(
      'api-v2-approved',
      deployment({ namespace: ns, image: 'registry.example/api:2.0', annotations: approvalAnnotations(tokens) }),
    );
    expect(await kubectl(['apply', '--server-side', '--force-conflicts', '-f', approvedFile])).toMatchObject({ code: 0, stderr: '' });
  });

  it('admits kubectl rollout undo to an approved revision while its approvals are valid: kubectl restores them from its ReplicaSet', async () => {
    await eventually('the v2 ReplicaSet', async () => {
      const list = (await getJson(['get', 'replicasets', '-n', ns, '-l', 'app=api'])) as { items: unknown[] };
      return list.items.length === 2;
    });
    const undo = await kubectl(['rollout', 'undo', 'deployment/api', '-n', ns]);
    // (kubectl warns that the last-applied annotation is not rolled back with the rest.)
    expect(undo).toMatchObject({ code: 0, stdout: 'deployment.apps/api rolled back\n' });
    expect(undo.stderr).not.toMatch(/twokey/);
    expect(await imageOf(ns, 'api')).toBe('registry.example/api:1.0');
  });
  it('does not count an approval by the user making the request (impersonated alice)', async () => {
    const v3File = await writeManifest('api-v3', deployment({ namespace: ns, image: 'registry.example/api:3.0' }));
    const v3Digest = digestIn((await kubectl(['apply', '--server-side', '--force-conflicts', '--dry-run=server', '-f', v3File])).stderr);
    const tokens = {
      alice: await approve({ approver: 'alice', change: 'CHG-V3', digest: v3Digest, file: v3File }),
      bob: await approve({ approver: 'bob', change: 'CHG-V3', digest: v3Digest, file: v3File }),
    };
    const approvedFile = await writeManifest(
      'api-v3-approved',
      deployment({ namespace: ns, image: 'registry.example/api:3.0', annotations: approvalAnnotations(tokens) }),
    );
    const asAlice = await kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--as=alice',
      '--as-group=developers',
      '-f',
      approvedFile,
    ]);
    expect(asAlice.code).toBe(1);
    expect(asAlice.stderr).toMatch(/refused: 1 of 2 required approvals .*approver "alice" is the user making this request/);
    // The same approvals, applied by someone who approved neither: admitted.
    const asDave = await kubectl(['apply', '--server-side', '--force-conflicts', '--as=dave', '--as-group=developers', '-f', approvedFile]);
    expect(asDave.code).toBe(0);
    // Approvals of earlier changes still on the object are named, never counted.
    expect(asDave.stderr).toMatch(/^(Warning: twokey: approval\.twokey\.dev\/\w+ did not count: bound to another change.*\n)*$/);
  });
});

describe('kubectl rollout undo to a revision that was never approved', () => {
  it('is refused', async () => {
    // Deployed before its namespace became critical: that revision has no approvals.
    const ns = await namespace('legacy', { critical: false });
    await kubectlOk(['apply', '-f', await writeManifest('legacy-v0', deployment({ namespace: ns, image: 'registry.example/api:0.9' }))]);
    await kubectlOk(['label', 'namespace', ns, 'twokey.dev/critical=true']);
    const v1File = await writeManifest('legacy-v1', deployment({ namespace: ns }));
    const digest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', v1File])).stderr);
    const tokens = {
      bob: await approve({ approver: 'bob', digest, file: v1File }),
      carol: await approve({ approver: 'carol', digest, file: v1File }),
    };
    await kubectlOk([
      'apply',
      '-f',
      await writeManifest('legacy-v1-approved', deployment({ namespace: ns, annotations: approvalAnnotations(tokens) })),
    ]);
    await eventually(
      'two ReplicaSets',
      async () => ((await getJson(['get', 'replicasets', '-n', ns])) as { items: unknown[] }).items.length === 2,
    );

    const undo = await kubectl(['rollout', 'undo', 'deployment/api', '-n', ns]);
    expect(undo.code).toBe(1);
    expect(undo.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused: 0 of 2 required approvals/);
    expect(await imageOf(ns, 'api')).toBe('registry.example/api:1.0');
  });
});

async function imageOf(ns: string, name: string): Promise<string | undefined> {
  const live = (await getJson(['get', 'deployment', name, '-n', ns])) as {
    spec: { template: { spec: { containers: Array<{ image: string }> } } };
  };
  return live.spec.template.spec.containers[0]?.image;
}
