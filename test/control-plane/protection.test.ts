/**
 * The chart's guard of twokey itself, compiled and enforced by the real API server: what the chart
 * README says someone outside protection.allowedGroups cannot do is refused (alice has
 * cluster-admin, not system:masters), the cluster's controllers keep working, and helm upgrade and
 * uninstall either complete or are refused before they remove anything.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually, getJson, helm, kubectl, kubectlOk, plane, writeManifest } from './support.ts';
import { CHART, RELEASE } from './twokey.ts';

const GUARD =
  /is forbidden: ValidatingAdmissionPolicy 'twokey-protect' with binding 'twokey-protect' denied request: twokey: .* is part of the twokey admission guard; only system:masters may change or remove it/;
const asAlice = (args: readonly string[]) => kubectl(['--context', 'alice', ...args]);

async function refusedToAlice(args: readonly string[]): Promise<void> {
  const result = await asAlice(args);
  expect(result.code, `kubectl ${args.join(' ')}`).not.toBe(0);
  expect(result.stderr, `kubectl ${args.join(' ')}`).toMatch(GUARD);
}

describe("the guard of twokey's own objects", () => {
  it('compiles: the API server reports no type-checking problem', async () => {
    const policy = await eventually('the policy status', async () => {
      const vap = (await getJson(['get', 'validatingadmissionpolicy', `${RELEASE.name}-protect`])) as {
        status?: { typeChecking?: unknown };
      };
      return vap.status?.typeChecking ? vap : undefined;
    });
    expect(policy.status?.typeChecking).toEqual({});
  });

  it.each([
    ['delete the webhook configuration', ['delete', 'validatingwebhookconfiguration', RELEASE.name, '--dry-run=server']],
    ['change the policy', ['-n', RELEASE.namespace, 'annotate', 'configmap', `${RELEASE.name}-policy`, 'x=y', '--dry-run=server']],
    ['scale the server to zero', ['-n', RELEASE.namespace, 'scale', 'deployment', RELEASE.name, '--replicas=0', '--dry-run=server']],
    ['delete the keys', ['-n', RELEASE.namespace, 'delete', 'secret', `${RELEASE.name}-jwks`, '--dry-run=server']],
    ['delete its RBAC', ['delete', 'clusterrole', RELEASE.name, '--dry-run=server']],
    ['delete its binding', ['delete', 'clusterrolebinding', RELEASE.name, '--dry-run=server']],
    ['delete its PriorityClass', ['delete', 'priorityclass', `${RELEASE.name}-webhook`, '--dry-run=server']],
    ['delete its PodDisruptionBudget', ['-n', RELEASE.namespace, 'delete', 'pdb', RELEASE.name, '--dry-run=server']],
    ['delete its namespace', ['delete', 'namespace', RELEASE.namespace, '--dry-run=server']],
    [
      'run a Job in its namespace',
      ['-n', RELEASE.namespace, 'create', 'job', 'stand-in', '--image=registry.example/evil:1', '--dry-run=server'],
    ],
    [
      'run a pod with the server labels in its namespace',
      [
        '-n',
        RELEASE.namespace,
        'run',
        'stand-in',
        '--image=registry.example/evil:1',
        `--labels=app.kubernetes.io/name=twokey,app.kubernetes.io/instance=${RELEASE.name}`,
        '--dry-run=server',
      ],
    ],
    [
      'give its Deployment an owner through the status subresource',
      [
        '-n',
        RELEASE.namespace,
        'patch',
        'deployment',
        RELEASE.name,
        '--subresource=status',
        '--type=merge',
        '-p',
        '{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"gone","uid":"5b1e0c9a-0000-4000-8000-000000000001"}]}}',
      ],
    ],
    [
      'relabel its namespace through the status subresource',
      ['patch', 'namespace', RELEASE.namespace, '--subresource=status', '--type=merge', '-p', '{"metadata":{"labels":{"x":"y"}}}'],
    ],
  ])('refuses anyone else to %s', async (_what, args) => {
    await refusedToAlice(args);
  });

  it('refuses anyone else an EndpointSlice that would send the webhook Service elsewhere', async () => {
    const slice = await writeManifest('endpointslice', {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'stand-in', namespace: RELEASE.namespace, labels: { 'kubernetes.io/service-name': RELEASE.name } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.9'] }],
      ports: [{ name: 'https', port: 8443, protocol: 'TCP' }],
    });
    await refusedToAlice(['apply', '-f', slice, '--dry-run=server']);
  });

  it('refuses anyone else exec into its pods (where the serving key is mounted)', async () => {
    const pod = (await kubectlOk(['-n', RELEASE.namespace, 'get', 'pods', '-o', 'name'])).split('\n')[0] as string;
    const result = await asAlice(['-n', RELEASE.namespace, 'exec', pod, '--', 'cat', '/etc/twokey/tls/tls.key']);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/pods\/exec .* is part of the twokey admission guard/);
  });

  it('lets the allowed groups change it, and the controllers make its pods and write its status', async () => {
    await kubectlOk(['-n', RELEASE.namespace, 'annotate', 'configmap', `${RELEASE.name}-policy`, 'reviewed=yes', '--dry-run=server']);
    const [pod] = (await kubectlOk(['-n', RELEASE.namespace, 'get', 'pods', '-o', 'name'])).trim().split('\n');
    await kubectlOk(['-n', RELEASE.namespace, 'delete', pod as string, '--wait=false']);
    // The replicaset controller makes a new pod through the guard.
    await eventually('a new server pod', async () => {
      const pods = (await kubectlOk(['-n', RELEASE.namespace, 'get', 'pods', '-o', 'name'])).trim().split('\n');
      return pods.some((p) => p !== '' && p !== pod);
    });
    const status = (await getJson(['-n', RELEASE.namespace, 'get', 'deployment', RELEASE.name])) as {
      status?: { observedGeneration?: number };
    };
    expect(status.status?.observedGeneration).toBeGreaterThan(0);
  });
});

describe('helm upgrade and uninstall', () => {
  it('upgrades for the allowed groups and refuses anyone else', async () => {
    const values = join(plane.twokey.dir, 'values.json');
    const upgrade = await helm(['upgrade', RELEASE.name, CHART, '-n', RELEASE.namespace, '-f', values]);
    expect(upgrade.stderr).toBe('');
    expect(upgrade.code).toBe(0);
    const refused = await helm(['upgrade', RELEASE.name, CHART, '-n', RELEASE.namespace, '-f', values, '--set', 'logLevel=debug'], {
      context: 'alice',
    });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/is part of the twokey admission guard/);
  });

  it("refuses anyone else's uninstall before it removes anything, and completes the allowed groups'", async () => {
    // A second release, so the suite's own install stays: its webhook reaches the same server.
    const release = 'guard-b';
    const namespace = 'twokey-b';
    const values = JSON.parse(await readFile(join(plane.twokey.dir, 'values.json'), 'utf8')) as Record<string, unknown>;
    const caBundle = Buffer.from(await readFile(join(plane.twokey.dir, 'ca.crt'))).toString('base64');
    const valuesFile = await writeManifest(
      'values-b',
      JSON.stringify({
        ...values,
        tls: { mode: 'secret', secret: { name: `${RELEASE.name}-tls`, caBundle } },
        priorityClass: { create: true, name: '', value: 1000 },
      }),
    );
    const install = await helm(['install', release, CHART, '-n', namespace, '--create-namespace', '-f', valuesFile]);
    expect(install.code, install.stderr).toBe(0);
    const fullname = `${release}-twokey`;
    const objects = [
      ['validatingwebhookconfiguration', fullname],
      ['validatingadmissionpolicy', `${fullname}-protect`],
      ['validatingadmissionpolicybinding', `${fullname}-protect`],
      ['clusterrole', fullname],
      ['clusterrolebinding', fullname],
      ['priorityclass', `${fullname}-webhook`],
      ['-n', namespace, 'deployment', fullname],
      ['-n', namespace, 'poddisruptionbudget', fullname],
      ['-n', namespace, 'configmap', `${fullname}-policy`],
    ];
    const present = async () => Promise.all(objects.map(async (args) => (await kubectl(['get', ...args, '-o', 'name'])).code === 0));
    // The API server loads a new policy within a moment of its creation.
    await eventually('the new release guarded', async () => {
      const probe = await asAlice(['-n', namespace, 'create', 'configmap', `${fullname}-uninstall`, '--dry-run=server']);
      return probe.code !== 0 && /uninstalling twokey is part of the twokey admission guard/.test(probe.stderr);
    });

    const refused = await helm(['uninstall', release, '-n', namespace], { context: 'alice' });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /pre-delete .* uninstalling twokey is part of the twokey admission guard; only system:masters may change or remove it/,
    );
    expect(await present()).toEqual(objects.map(() => true));

    const uninstall = await helm(['uninstall', release, '-n', namespace]);
    expect(uninstall.code, uninstall.stderr).toBe(0);
    expect(await present()).toEqual(objects.map(() => false));
    await kubectlOk(['delete', 'namespace', namespace, '--wait=false']);
  });
});
