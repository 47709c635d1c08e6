/**
 * The kustomize recipe of the README, with the kustomize built into the real kubectl: a
 * kustomization that sets the namespace and the image is planned against the cluster, approved once
 * by each of two people, attached and applied server-side by a third; the same overlay with another
 * image afterwards is refused.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { planApproveArgs } from './commands.ts';
import { getJson, kubectl, namespace, plane, twokey } from './support.ts';
import { CLUSTER, ISSUER } from './twokey.ts';

const DEPLOYMENT = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'web' },
  spec: {
    replicas: 1,
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'web', image: 'registry.example/web:1.0' }] },
    },
  },
};

/** Writes a base and an overlay that puts it in `ns` with the image tag `tag`; returns the overlay. */
async function overlay(work: string, ns: string, tag: string): Promise<string> {
  const base = join(work, 'base');
  const prod = join(work, `prod-${tag}`);
  await mkdir(base, { recursive: true });
  await mkdir(prod, { recursive: true });
  await writeFile(join(base, 'deployment.yaml'), stringify(DEPLOYMENT));
  await writeFile(join(base, 'kustomization.yaml'), stringify({ resources: ['deployment.yaml'] }));
  await writeFile(
    join(prod, 'kustomization.yaml'),
    stringify({ namespace: ns, resources: ['../base'], images: [{ name: 'registry.example/web', newTag: tag }] }),
  );
  return prod;
}

async function build(dir: string): Promise<string> {
  const built = await kubectl(['kustomize', dir]);
  expect(built.code, built.stderr).toBe(0);
  return built.stdout;
}

describe('the kustomize recipe', () => {
  let work: string;
  let ns: string;
  let planFile: string;
  let approvals: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'twokey-kustomize-'));
    ns = await namespace('kustomize');
  });

  it('plans the built overlay in the namespace kustomize sets, without -n', async () => {
    const rendered = await build(await overlay(work, ns, '2.0'));
    const plan = await twokey(['plan', '--server', '-f', '-', '-o', 'json'], { input: rendered });
    expect(plan.code, plan.stderr).toBe(0);
    const document = JSON.parse(plan.stdout) as { entries: Array<{ action: string; namespace: string; name: string }> };
    expect(document.entries.map((e) => `${e.action} ${e.namespace}/${e.name}`)).toEqual([`deploy ${ns}/web`]);
    planFile = join(work, 'plan.json');
    await writeFile(planFile, plan.stdout);
    approvals = join(work, 'approvals');
    await mkdir(approvals);
    for (const approver of ['bob', 'carol']) {
      const token = await twokey(
        planApproveArgs(plane.twokey.issuerKey, ISSUER, CLUSTER, { plan: planFile, approver, change: 'CHG-KUST-1' }),
      );
      expect(token.code, token.stderr).toBe(0);
      await writeFile(join(approvals, `${approver}.jwt`), token.stdout);
    }
  });

  it('kubectl kustomize | twokey attach | kubectl apply --server-side is admitted', async () => {
    const rendered = await build(join(work, 'prod-2.0'));
    const attached = await twokey(['attach', '--approvals', approvals, '--plan', planFile], { input: rendered });
    expect(attached.code, attached.stderr).toBe(0);
    const applied = await kubectl(['--context', 'alice', 'apply', '--server-side', '-f', '-'], { input: attached.stdout });
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    const web = (await getJson(['-n', ns, 'get', 'deployment', 'web'])) as {
      spec: { template: { spec: { containers: Array<{ image: string }> } } };
    };
    expect(web.spec.template.spec.containers[0]?.image).toBe('registry.example/web:2.0');
  });

  it('refuses the overlay built with another image, with the approvals of the plan attached', async () => {
    const rendered = await build(await overlay(work, ns, '6.6.6'));
    // attach matches objects by name, not by what they say: the webhook is what holds the change to the plan.
    const attached = await twokey(['attach', '--approvals', approvals, '--plan', planFile], { input: rendered });
    expect(attached.code, attached.stderr).toBe(0);
    const applied = await kubectl(['--context', 'alice', 'apply', '--server-side', '-f', '-'], { input: attached.stdout });
    expect(applied.code).not.toBe(0);
    expect(applied.stderr).toMatch(new RegExp(`twokey: deploy of deployments\\.apps ${ns}/web refused: 0 of 2 required approvals`));
    expect(applied.stderr).toMatch(/approval\.twokey\.dev\/bob: approves plan .*not the one planned/);
  });
});
