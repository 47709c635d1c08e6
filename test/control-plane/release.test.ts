/**
 * A release as a platform team ships it: six critical Deployments (and a ConfigMap, not gated)
 * rendered by the real helm, planned against the cluster, approved by two people with one token
 * each, attached by twokey's Helm post-renderer plugin on an install by a third person, and
 * admitted by the webhook; then an upgrade that changes one object after the plan is refused. The
 * same plan works without Helm's help, as a plain pipe into kubectl.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { planApproveArgs, TWOKEY_BIN } from './commands.ts';
import { getJson, helm, kubectl, namespace, plane, twokey } from './support.ts';
import { CLUSTER, ISSUER } from './twokey.ts';

const CHART = fileURLToPath(new URL('./charts/shop', import.meta.url));
const PLUGIN = fileURLToPath(new URL('../../plugins/helm-twokey', import.meta.url));
const SERVICES = ['api', 'cart', 'checkout', 'ledger', 'search', 'worker'];

interface Deployments {
  items: Array<{ metadata: { name: string; annotations?: Record<string, string> } }>;
}

let work: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'twokey-release-'));
  // Helm 4 installs a plugin from a local folder as a link under $HELM_DATA_HOME/plugins, and finds
  // plugins under HELM_PLUGINS; the plugin finds the twokey command through TWOKEY.
  env = {
    HELM_DATA_HOME: join(work, 'data'),
    HELM_PLUGINS: join(work, 'data', 'plugins'),
    HELM_CACHE_HOME: join(work, 'cache'),
    HELM_CONFIG_HOME: join(work, 'config'),
    TWOKEY: `${process.execPath} ${TWOKEY_BIN}`,
  };
  const installed = await helm(['plugin', 'install', PLUGIN], { env });
  expect(installed.code, installed.stderr).toBe(0);
});

/**
 * Renders the chart for `ns`, plans it against the cluster as `fieldManager` will apply it and has
 * bob and carol approve the plan once each.
 */
async function planAndApprove(
  ns: string,
  name: string,
  fieldManager = 'helm',
): Promise<{ rendered: string; planFile: string; approvals: string }> {
  const rendered = await helm(['template', 'shop', CHART, '-n', ns], { env });
  expect(rendered.code, rendered.stderr).toBe(0);
  const plan = await twokey(['plan', '--server', '-n', ns, '--field-manager', fieldManager, '-f', '-', '-o', 'json'], {
    input: rendered.stdout,
  });
  expect(plan.code, plan.stderr).toBe(0);
  const document = JSON.parse(plan.stdout) as {
    source: string;
    entries: Array<{ action: string; name: string }>;
    objects: Array<{ name: string; actions: string[] }>;
  };
  expect(document.source).toBe('cluster');
  expect(document.entries.map((e) => `${e.action} ${e.name}`)).toEqual(SERVICES.map((s) => `deploy ${s}`));
  expect(document.objects.find((o) => o.name === 'shop-settings')?.actions).toEqual([]);
  const planFile = join(work, `${name}-plan.json`);
  await writeFile(planFile, plan.stdout);

  const approvals = join(work, `${name}-approvals`);
  await mkdir(approvals);
  for (const approver of ['bob', 'carol']) {
    const token = await twokey(
      planApproveArgs(plane.twokey.issuerKey, ISSUER, CLUSTER, { plan: planFile, approver, change: `CHG-${name.toUpperCase()}-1` }),
    );
    expect(token.code, token.stderr).toBe(0);
    await writeFile(join(approvals, `${approver}.jwt`), token.stdout);
  }
  return { rendered: rendered.stdout, planFile, approvals };
}

async function expectApproved(ns: string): Promise<void> {
  const deployments = (await getJson(['-n', ns, 'get', 'deployments'])) as unknown as Deployments;
  expect(deployments.items.map((d) => d.metadata.name).sort()).toEqual(SERVICES);
  for (const d of deployments.items) {
    expect(
      Object.keys(d.metadata.annotations ?? {})
        .filter((k) => k.startsWith('approval.twokey.dev/'))
        .sort(),
    ).toEqual(['approval.twokey.dev/bob', 'approval.twokey.dev/carol']);
  }
  const settings = (await getJson(['-n', ns, 'get', 'configmap', 'shop-settings'])) as {
    metadata: { annotations?: Record<string, string> };
  };
  expect(Object.keys(settings.metadata.annotations ?? {}).filter((k) => k.includes('twokey.dev'))).toEqual([]);
}

describe('a release of six critical Deployments through the Helm plugin', () => {
  let ns: string;
  let release: Awaited<ReturnType<typeof planAndApprove>>;
  const postRenderer = () => [
    '--post-renderer',
    'twokey',
    `--post-renderer-args=--approvals=${release.approvals}`,
    `--post-renderer-args=--plan=${release.planFile}`,
    `--post-renderer-args=--namespace=${ns}`,
  ];

  beforeAll(async () => {
    ns = await namespace('shop');
  });

  it('is planned with a diff against the cluster', async () => {
    release = await planAndApprove(ns, 'helm');
    const shown = await twokey(['plan', '--server', '-n', ns, '--field-manager', 'helm', '-f', '-'], { input: release.rendered });
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(new RegExp(`^deployments\\.apps ${ns}/api \\(create\\): gated\\n {2}deploy sha256:[0-9a-f]{64}$`, 'm'));
    expect(shown.stdout).toContain('+          image: registry.example/api:1.0');
    expect(shown.stdout).toMatch(new RegExp(`^ConfigMap\\.v1 ${ns}/shop-settings \\(create\\): not gated`, 'm'));
  });

  it('is attached by the plugin on an install by a third person, and admitted', async () => {
    const install = await helm(['install', 'shop', CHART, '-n', ns, ...postRenderer()], { env, context: 'alice' });
    expect(install.stderr).toBe('');
    expect(install.code).toBe(0);
    await expectApproved(ns);
  });

  it('refuses an upgrade that changes one object after the plan, naming it', async () => {
    const upgrade = await helm(['upgrade', 'shop', CHART, '-n', ns, '--set', 'services.worker=6.6.6', ...postRenderer()], {
      env,
      context: 'alice',
    });
    expect(upgrade.code).not.toBe(0);
    expect(upgrade.stderr).toMatch(
      new RegExp(`denied the request: twokey: deploy of deployments\\.apps ${ns}/worker refused: 0 of 2 required approvals`),
    );
    expect(upgrade.stderr).toMatch(/approval\.twokey\.dev\/bob: approves plan .*not the one planned/);
    const worker = (await getJson(['-n', ns, 'get', 'deployment', 'worker'])) as {
      spec: { template: { spec: { containers: Array<{ image: string }> } } };
    };
    expect(worker.spec.template.spec.containers[0]?.image).toBe('registry.example/worker:1.0');
  });
});

describe('the same release as a plain pipe', () => {
  it('helm template | twokey attach | kubectl apply --server-side -f - is admitted, and so is an upgrade planned the same way', async () => {
    const ns = await namespace('pipe');
    const { rendered, planFile, approvals } = await planAndApprove(ns, 'pipe', 'kubectl');
    const attached = await twokey(['attach', '--approvals', approvals, '--plan', planFile, '-n', ns], { input: rendered });
    expect(attached.code, attached.stderr).toBe(0);
    const applied = await kubectl(['--context', 'alice', 'apply', '--server-side', '-n', ns, '-f', '-'], { input: attached.stdout });
    expect(applied.stderr).toBe('');
    expect(applied.code).toBe(0);
    await expectApproved(ns);

    // An update of live objects: the plan's dry run and the apply are the same server-side apply.
    const upgrade = await helm(['template', 'shop', CHART, '-n', ns, '--set', 'services.worker=2.0'], { env });
    expect(upgrade.code, upgrade.stderr).toBe(0);
    const plan = await twokey(['plan', '--server', '-n', ns, '-f', '-', '-o', 'json'], { input: upgrade.stdout });
    expect(plan.code, plan.stderr).toBe(0);
    const entries = (JSON.parse(plan.stdout) as { entries: Array<{ action: string; name: string }> }).entries;
    expect(entries.map((e) => `${e.action} ${e.name}`)).toEqual(['deploy worker']);
    const upgradePlan = join(work, 'pipe-upgrade-plan.json');
    await writeFile(upgradePlan, plan.stdout);
    const upgradeApprovals = join(work, 'pipe-upgrade-approvals');
    await mkdir(upgradeApprovals);
    for (const approver of ['bob', 'carol']) {
      const token = await twokey(
        planApproveArgs(plane.twokey.issuerKey, ISSUER, CLUSTER, { plan: upgradePlan, approver, change: 'CHG-PIPE-2' }),
      );
      expect(token.code, token.stderr).toBe(0);
      await writeFile(join(upgradeApprovals, `${approver}.jwt`), token.stdout);
    }
    const upgraded = await twokey(['attach', '--approvals', upgradeApprovals, '--plan', upgradePlan, '-n', ns], { input: upgrade.stdout });
    expect(upgraded.code, upgraded.stderr).toBe(0);
    const reapplied = await kubectl(['--context', 'alice', 'apply', '--server-side', '-n', ns, '-f', '-'], { input: upgraded.stdout });
    expect(reapplied.stderr).toBe('');
    expect(reapplied.code).toBe(0);
    const worker = (await getJson(['-n', ns, 'get', 'deployment', 'worker'])) as {
      spec: { template: { spec: { containers: Array<{ image: string }> } } };
    };
    expect(worker.spec.template.spec.containers[0]?.image).toBe('registry.example/worker:2.0');
  });
});
