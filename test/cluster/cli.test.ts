/**
 * The CLI against a cluster: digest --server, check --server and scan, run in this process against
 * the test API server, which calls a real twokey webhook for its dry runs.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalDigest, deploySpec, digestOf } from '../../src/change/digest.ts';
import { plannedDryRunRefused } from '../../src/cluster/plan.ts';
import type { JsonObject } from '../../src/json.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { twokey as runTwokey } from '../support/cli.ts';
import { applyDefaults, FakeKube } from '../support/fake-kube.ts';
import { policyYaml, SERVICE_NAME, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import { approve, bindingFor, deployment, type Issuer, makeIssuer, withAnnotations } from '../support/world.ts';

let kube: FakeKube;
let files: ServerFiles;
let issuer: Issuer;
let server: RunningServer;
let kubeconfig: string;
let manifest: string;

beforeAll(async () => {
  kube = new FakeKube();
  await kube.start();
  issuer = await makeIssuer();
  files = await serverFiles(issuer);
  server = await serveFiles(files);
  kube.webhook = { base: `https://127.0.0.1:${server.port}`, caBundle: files.ca.certPem, serverName: SERVICE_NAME };
  kube.putNamespace('payments', { 'twokey.dev/critical': 'true' });
  kube.putNamespace('sandbox');
  kubeconfig = await kube.writeKubeconfig(join(files.dir, 'kubeconfig'), 'payments');
  await writeFile(join(files.dir, 'private.jwk.json'), JSON.stringify(issuer.privateJwk));
  manifest = join(files.dir, 'api.yaml');
  await writeFile(
    manifest,
    'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec:\n      containers: [{name: api, image: "registry.example.com/api:2.0.0"}]\n',
  );
});
afterAll(async () => {
  await server?.shutdown();
  await kube?.stop();
  await files?.cleanup();
});

const twokey = (...args: string[]) => runTwokey([...args, '--kubeconfig', kubeconfig]);

describe('twokey plan --server', () => {
  it("takes each digest from the webhook's plan warning of a dry run, and shows what the apply adds", async () => {
    const before = kube.objects.size;
    const expected = (await twokey('digest', '--server', '-f', manifest)).stdout.split(' ')[0];
    const planned = await twokey('plan', '--server', '-n', 'payments', '-f', manifest, '-o', 'json');
    expect(planned.code, planned.stderr).toBe(0);
    const document = JSON.parse(planned.stdout) as {
      source: string;
      entries: Array<{ name: string; digest: string }>;
      objects: Array<{ diff: string }>;
    };
    expect(document.source).toBe('cluster');
    expect(document.entries).toEqual([
      { action: 'deploy', resource: 'deployments.apps', namespace: 'payments', name: 'api', digest: expected },
    ]);
    expect(document.objects[0]?.diff).toMatch(/^\+ {10}image: registry\.example\.com\/api:2\.0\.0$/m);
    expect(document.objects[0]?.diff).not.toMatch(/twokey\.dev\/plan|managedFields|uid:/);
    const shown = await twokey('plan', '--server', '-n', 'payments', '-f', manifest);
    expect(shown.stdout).toMatch(/^deployments\.apps payments\/api \(create\): gated\n {2}deploy sha256:[0-9a-f]{64}$/m);
    expect(kube.objects.size).toBe(before);
  });
  it('refuses a digest told for the object that is not of what its dry run returned', async () => {
    const expected = (await twokey('digest', '--server', '-f', manifest)).stdout.split(' ')[0];
    const injected = digestOf({
      action: 'deploy',
      resource: 'deployments.apps',
      namespace: 'payments',
      name: 'api',
      spec: { template: { spec: { containers: [{ name: 'api', image: 'evil:1' }] } } },
    });
    kube.otherWarnings = [`twokey plan: deploy deployments.apps payments/api ${injected}`];
    try {
      const planned = await twokey('plan', '--server', '-n', 'payments', '-f', manifest, '-o', 'json');
      expect(planned.code).not.toBe(0);
      expect(planned.stdout).toBe('');
      expect(planned.stderr).toContain(
        `the dry run of deployments.apps payments/api told the deploy digest ${injected}, but the object it returned has ${expected}`,
      );
      expect(planned.stderr).toContain('would not approve the object the dry run returned');
      const digest = await twokey('digest', '--server', '-f', manifest);
      expect(digest.code).not.toBe(0);
      expect(digest.stderr).toContain(`told the deploy digest ${injected}, but the object it returned has ${expected}`);
      // The same line repeated is the same aspect, once.
      kube.otherWarnings = [`twokey plan: deploy deployments.apps payments/api ${expected}`];
      const repeated = await twokey('plan', '--server', '-n', 'payments', '-f', manifest, '-o', 'json');
      expect(repeated.code, repeated.stderr).toBe(0);
      expect((JSON.parse(repeated.stdout) as { entries: unknown[] }).entries).toHaveLength(1);
    } finally {
      kube.otherWarnings = [];
    }
  });
});

describe('a refused dry run with the plan marker', () => {
  it('says whether the cluster, a twokey that cannot judge, or a twokey without the marker refused it', () => {
    const webhook = 'admission webhook "workloads.twokey.dev" denied the request: twokey: ';
    const refused = (message: string, byTwokey = true) =>
      plannedDryRunRefused({ message, byTwokey }, 'deployments.apps payments/api').message;
    expect(refused('deployments.apps "api" is forbidden', false)).toMatch(
      /^the dry run of deployments.apps payments\/api failed \(the cluster refused it\)/,
    );
    expect(refused(`${webhook}cannot judge deploy of deployments.apps payments/api: no policy`)).toMatch(/\(twokey could not judge it\)/);
    const old = `${webhook}deploy of deployments.apps payments/api refused: 0 of 2 required approvals. Needed: approvals bound to digest sha256:${'a'.repeat(64)}.`;
    expect(refused(old)).toMatch(/\(twokey in the cluster asks for approvals: it does not know the plan marker, upgrade it\)/);
  });
});

describe('twokey digest --server', () => {
  it('prints the digest the webhook computes, server defaults included, from a dry run with the plan marker', async () => {
    const result = await twokey('digest', '--server', '-f', manifest);
    expect(result.code, result.stderr).toBe(0);
    const [digest, resource, where] = result.stdout.trim().split(/\s+/);
    expect(resource).toBe('deployments.apps');
    expect(where).toBe('payments/api');
    const local = (await runTwokey(['digest', '-f', manifest, '-n', 'payments'])).stdout.split(' ')[0];
    expect(digest).not.toBe(local);
    const dryRuns = kube.requests.filter((r) => r.startsWith('PATCH /apis/apps/v1/namespaces/payments/deployments/api?dryRun=All'));
    expect(dryRuns.length).toBeGreaterThan(0);
    // Applied as kubectl apply --server-side applies, so fields other managers own are kept alike.
    expect(dryRuns.every((r) => new URL(r.split(' ')[1] as string, 'https://x').searchParams.get('fieldManager') === 'kubectl')).toBe(true);
    expect(kube.objects.size).toBe(0);
    await twokey('digest', '--server', '-f', manifest, '--field-manager', 'helm');
    expect(kube.requests.at(-1)).toContain('fieldManager=helm');
  });

  it('prints the digest of the dry-run result where nothing refuses, and the live uid for a delete', async () => {
    const live = kube.putObject({ ...deployment({ name: 'worker', namespace: 'sandbox' }) });
    const workerFile = join(files.dir, 'worker.json');
    await writeFile(workerFile, JSON.stringify(deployment({ name: 'worker', namespace: 'sandbox' })));
    const deploy = await twokey('digest', '--server', '-f', workerFile);
    expect(deploy.stdout.split(' ')[0]).toBe(
      digestOf({ action: 'deploy', resource: 'deployments.apps', namespace: 'sandbox', name: 'worker', spec: deploySpec(live) }),
    );
    const deleted = await twokey('digest', '--server', '--action', 'delete', '-f', workerFile);
    const uid = (live.metadata as JsonObject).uid as string;
    expect(deleted.stdout.split(' ')[0]).toBe(
      digestOf({ action: 'delete', resource: 'deployments.apps', namespace: 'sandbox', name: 'worker', uid }),
    );
  });

  it('prints each aspect its own digest when one change is both a deploy and an unprotect', async () => {
    const live = kube.putObject(deployment({ name: 'handover', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'true' } }));
    const next = deployment({ name: 'handover', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'true' }, image: 'x:6.6.6' });
    (next.metadata as JsonObject).ownerReferences = [{ apiVersion: 'example.com/v1', kind: 'Database', name: 'ghost', uid: 'uid-ghost' }];
    const file = join(files.dir, 'handover.json');
    await writeFile(file, JSON.stringify(next));
    const target = { resource: 'deployments.apps', namespace: 'sandbox', name: 'handover' };
    const deploy = await twokey('digest', '--server', '-f', file);
    expect(deploy.code, deploy.stderr).toBe(0);
    expect(deploy.stdout.split(' ')[0]).toBe(digestOf({ action: 'deploy', ...target, spec: deploySpec(applyDefaults(next)) }));
    const unprotect = await twokey('digest', '--server', '--action', 'unprotect', '-f', file);
    expect(unprotect.code, unprotect.stderr).toBe(0);
    expect(unprotect.stdout.split(' ')[0]).toBe(
      bindingFor('unprotect', { ...next, metadata: { ...(next.metadata as JsonObject), uid: (live.metadata as JsonObject).uid } }).digest,
    );
    // The plan takes both from the webhook, each checked against the object the dry run returned.
    const planned = await twokey('plan', '--server', '-f', file, '-o', 'json');
    expect(planned.code, planned.stderr).toBe(0);
    expect((JSON.parse(planned.stdout) as { entries: Array<{ action: string; digest: string }> }).entries).toEqual([
      { action: 'deploy', ...target, digest: deploy.stdout.split(' ')[0] },
      { action: 'unprotect', ...target, digest: unprotect.stdout.split(' ')[0] },
    ]);
  });

  it('binds an unprotect to the live uid and to the label and owners the change leaves', async () => {
    const live = kube.putObject(deployment({ name: 'unlabel', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'true' } }));
    const next = deployment({ name: 'unlabel', namespace: 'sandbox' });
    delete (next.metadata as JsonObject).uid;
    const file = join(files.dir, 'unlabel.json');
    await writeFile(file, JSON.stringify(next));
    const result = await twokey('digest', '--server', '--action', 'unprotect', '-f', file);
    expect(result.code, result.stderr).toBe(0);
    const uid = (live.metadata as JsonObject).uid as string;
    expect(result.stdout.split(' ')[0]).toBe(
      canonicalDigest({
        action: 'unprotect',
        resource: 'deployments.apps',
        namespace: 'sandbox',
        name: 'unlabel',
        uid,
        critical: false,
        owners: [],
      }),
    );
  });

  it('exits 2 naming the object when the cluster cannot be reached', async () => {
    const broken = join(files.dir, 'broken-kubeconfig');
    await writeFile(broken, (await import('node:fs')).readFileSync(kubeconfig, 'utf8').replace(/127\.0\.0\.1:\d+/, '127.0.0.1:1'));
    const result = await runTwokey(['digest', '--server', '-f', manifest, '--kubeconfig', broken]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/PATCH \/apis\/apps\/v1\/namespaces\/payments\/deployments\/api on 127\.0\.0\.1:1 failed/);
  });
});

describe('twokey check --server', () => {
  it('shows the cluster refusal without approvals, and admits with approvals bound to the server digest', async () => {
    const refused = await twokey('check', '--server', '--config', files.policy, '-f', manifest);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(
      /^Error from server \(Forbidden\): error when creating ".*api\.yaml": admission webhook "workloads\.twokey\.dev" denied the request: twokey: deploy of deployments\.apps payments\/api refused/,
    );
    expect(refused.stdout).toContain('"kubernetes-admin" (making this request)');

    const digest = (await twokey('digest', '--server', '-f', manifest)).stdout.split(' ')[0] as string;
    const tokens: string[] = [];
    for (const approver of ['bob@example.com', 'carol@example.com']) {
      const minted = await runTwokey([
        'approve',
        '--private-key',
        join(files.dir, 'private.jwk.json'),
        '--issuer',
        issuer.issuer,
        '--audience',
        'prod-eu-1',
        '--approver',
        approver,
        '--change',
        'CHG42',
        '-f',
        manifest,
        '-n',
        'payments',
        '--digest',
        digest,
      ]);
      tokens.push(minted.stdout.trim());
    }
    const approved = join(files.dir, 'api-approved.yaml');
    const text = (await import('node:fs'))
      .readFileSync(manifest, 'utf8')
      .replace(
        '  name: api\n',
        `  name: api\n  annotations:\n    approval.twokey.dev/bob: ${tokens[0]}\n    approval.twokey.dev/carol: ${tokens[1]}\n`,
      );
    await writeFile(approved, text);
    const admitted = await twokey('check', '--server', '--config', files.policy, '-f', approved);
    expect(admitted.code, admitted.stdout + admitted.stderr).toBe(0);
    expect(admitted.stdout).toContain(
      'deployments.apps payments/api: admitted (admitted: deploy of deployments.apps payments/api approved for CHG42 by bob@example.com, carol@example.com)',
    );
  });

  it('judges a delete against the live object', async () => {
    kube.putObject(deployment({ name: 'ledger', namespace: 'payments' }));
    const file = join(files.dir, 'ledger.json');
    await writeFile(file, JSON.stringify(deployment({ name: 'ledger', namespace: 'payments' })));
    const result = await twokey('check', '--server', '--config', files.policy, '-f', file, '--operation', 'DELETE', '-o', 'json');
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)[0]).toMatchObject({ object: 'deployments.apps payments/ledger', allowed: false, action: 'delete' });
  });
});

describe('twokey check --server and the cleanup exemption', () => {
  it("judges the namespace controller's delete by whether the live namespace is being deleted", async () => {
    kube.putNamespace('closing', { 'twokey.dev/critical': 'true' }, { deleting: true });
    for (const namespace of ['closing', 'payments']) kube.putObject(deployment({ name: 'cleaned', namespace }));
    const judge = async (namespace: string) => {
      const file = join(files.dir, `cleaned-${namespace}.json`);
      await writeFile(file, JSON.stringify(deployment({ name: 'cleaned', namespace })));
      const controller = 'system:serviceaccount:kube-system:namespace-controller';
      return twokey('check', '--server', '--config', files.policy, '-f', file, '--operation', 'DELETE', '--user', controller, '-o', 'json');
    };
    const closing = await judge('closing');
    expect(closing.code, closing.stdout + closing.stderr).toBe(0);
    const active = await judge('payments');
    expect(active.code).toBe(1);
    expect(JSON.parse(active.stdout)[0]).toMatchObject({ allowed: false, action: 'delete' });
  });
});

describe('twokey scan', () => {
  it('reports critical workloads whose current spec no valid approvals cover, and exits 1', async () => {
    const covered = deployment({ name: 'covered', namespace: 'payments' });
    const stored = kube.putObject(covered);
    // Without managedFields, the spec last changed when the object was created.
    const created = Date.parse((stored.metadata as JsonObject).creationTimestamp as string) / 1000;
    const annotated = withAnnotations(stored, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', stored, {
        approver: 'bob@example.com',
        now: created - 60,
        change: 'CHG7',
      }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', stored, {
        approver: 'carol@example.com',
        now: created - 60,
        change: 'CHG7',
      }),
    });
    kube.putObject(annotated);
    kube.putObject(deployment({ name: 'labelled-elsewhere', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'true' } }));
    kube.putObject(deployment({ name: 'not-critical', namespace: 'sandbox' }));
    const owned = deployment({ name: 'owned', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'true' } });
    (owned.metadata as JsonObject).ownerReferences = [{ apiVersion: 'example.com/v1', kind: 'Database', name: 'ledger-db', uid: 'u-db' }];
    kube.putObject(owned);

    const result = await twokey('scan', '--config', files.policy, '-o', 'json');
    expect(result.code, result.stderr).toBe(1);
    const rows = JSON.parse(result.stdout) as Array<Record<string, unknown>>;
    const row = (name: string) => rows.find((r) => r.name === name);
    expect(row('covered')).toMatchObject({
      status: 'approved',
      criticalBy: 'namespace label',
      change: 'CHG7',
      approvers: ['bob@example.com', 'carol@example.com'],
    });
    expect(row('ledger')).toMatchObject({ status: 'unapproved', criticalBy: 'namespace label' });
    expect(row('labelled-elsewhere')).toMatchObject({ status: 'unapproved', criticalBy: 'label' });
    expect(row('not-critical')).toBeUndefined();
    // The garbage collector would delete it with its owner: the audit says so.
    expect(row('owned')?.detail).toContain('owned by Database/ledger-db, whose deletion deletes it without approvals');
    expect(row('payments')).toMatchObject({ resource: 'namespaces', status: 'protected' });

    const table = await twokey('scan', '--config', files.policy);
    expect(table.stdout.split('\n')[0]).toMatch(/^RESOURCE\s+NAMESPACE\s+NAME\s+CRITICAL BY\s+STATUS\s+DETAIL$/);
    expect(table.stdout).toMatch(/deployments\.apps\s+payments\s+ledger\s+namespace label\s+unapproved\s+0 of 2 required approvals/);
  });

  it('judges approvals at the time the spec last changed: expired since is fine, minted after is not', async () => {
    const changedAt = Date.parse('2026-11-10T12:00:00Z') / 1000;
    const base = deployment({ name: 'timed', namespace: 'payments' });
    const stored = kube.putObject(base);
    (stored.metadata as JsonObject).managedFields = [
      {
        manager: 'kubectl',
        operation: 'Update',
        apiVersion: 'apps/v1',
        time: '2026-11-10T12:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:spec': { 'f:template': {} } },
      },
      {
        manager: 'kube-controller-manager',
        operation: 'Update',
        apiVersion: 'apps/v1',
        time: '2026-11-20T00:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:status': {} },
        subresource: 'status',
      },
    ];
    const approvalsAt = async (now: number) => ({
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', stored, { approver: 'bob@example.com', now, ttlSeconds: 3600 }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', stored, { approver: 'carol@example.com', now, ttlSeconds: 3600 }),
    });
    kube.putObject(withAnnotations(stored, await approvalsAt(changedAt - 600)));
    let rows = JSON.parse((await twokey('scan', '--config', files.policy, '-o', 'json')).stdout) as Array<Record<string, unknown>>;
    expect(rows.find((r) => r.name === 'timed')).toMatchObject({ status: 'approved', specChangedAt: '2026-11-10T12:00:00Z' });

    kube.putObject(withAnnotations(stored, await approvalsAt(changedAt + 7200)));
    rows = JSON.parse((await twokey('scan', '--config', files.policy, '-o', 'json')).stdout) as Array<Record<string, unknown>>;
    expect(rows.find((r) => r.name === 'timed')).toMatchObject({ status: 'unapproved' });
  });
});

describe('twokey scan with identities rules', () => {
  it('judges as no user in particular: rules that refuse an unmapped user do not make every workload unjudgeable', async () => {
    const stored = kube.putObject(deployment({ name: 'mapped', namespace: 'payments' }));
    const created = Date.parse((stored.metadata as JsonObject).creationTimestamp as string) / 1000;
    const approvals = Object.fromEntries(
      await Promise.all(
        ['bob', 'carol'].map(async (name) => [
          `approval.twokey.dev/${name}`,
          await approve(issuer, 'deploy', stored, { approver: `${name}@example.com`, now: created - 60 }),
        ]),
      ),
    );
    kube.putObject(withAnnotations(stored, approvals));
    await files.writePolicy(policyYaml(issuer.issuer, 'identities:\n  rules:\n    - stripPrefix: "oidc:"\n'));
    try {
      const rows = JSON.parse((await twokey('scan', '--config', files.policy, '-o', 'json')).stdout) as Array<Record<string, unknown>>;
      expect(rows.find((r) => r.name === 'mapped')).toMatchObject({ status: 'approved' });
    } finally {
      await files.writePolicy(policyYaml(issuer.issuer));
    }
  });
});

describe('twokey scan and look-alike critical labels', () => {
  it('reports workloads and namespaces whose critical label is not "true" as findings, and exits 1 for them alone', async () => {
    const own = new FakeKube();
    await own.start();
    try {
      own.putNamespace('typo', { 'twokey.dev/critical': 'True' });
      own.putNamespace('sandbox');
      own.putNamespace('vault', { 'twokey.dev/critical': 'true' });
      own.putObject(deployment({ name: 'api', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'yes' } }));
      // Approved and critical by its namespace: its look-alike label is still a finding.
      const approvedIn = async (labels: Record<string, string>) => {
        const stored = own.putObject(deployment({ name: 'safe', namespace: 'vault', labels }));
        const now = Date.parse((stored.metadata as JsonObject).creationTimestamp as string) / 1000 - 60;
        own.putObject(
          withAnnotations(stored, {
            'approval.twokey.dev/bob': await approve(issuer, 'deploy', stored, { approver: 'bob@example.com', now }),
            'approval.twokey.dev/carol': await approve(issuer, 'deploy', stored, { approver: 'carol@example.com', now }),
          }),
        );
      };
      await approvedIn({ 'twokey.dev/critical': '1' });
      const config = await own.writeKubeconfig(join(files.dir, 'kubeconfig-look-alike'));
      const found = await runTwokey(['scan', '--config', files.policy, '-o', 'json', '--kubeconfig', config]);
      expect(found.code, found.stderr).toBe(1);
      expect(JSON.parse(found.stdout)).toEqual([
        {
          resource: 'deployments.apps',
          namespace: 'sandbox',
          name: 'api',
          criticalBy: 'none',
          status: 'mislabelled',
          detail: 'label twokey.dev/critical is "yes", not "true": it does not make this Deployment critical',
          criticalLabel: 'yes',
        },
        expect.objectContaining({
          resource: 'deployments.apps',
          namespace: 'vault',
          name: 'safe',
          criticalBy: 'namespace label',
          status: 'mislabelled',
          detail:
            'label twokey.dev/critical is "1", not "true": it does not make this Deployment critical; CHG0031337 approved by bob@example.com, carol@example.com',
          criticalLabel: '1',
        }),
        {
          resource: 'namespaces',
          namespace: '',
          name: 'typo',
          criticalBy: 'none',
          status: 'mislabelled',
          detail: 'label twokey.dev/critical is "True", not "true": it does not make this Namespace critical',
          criticalLabel: 'True',
        },
        {
          resource: 'namespaces',
          namespace: '',
          name: 'vault',
          criticalBy: 'label',
          status: 'protected',
          detail: 'deletion and unlabelling need approvals',
        },
      ]);
      own.putNamespace('typo', { 'twokey.dev/critical': 'false' });
      own.putObject(deployment({ name: 'api', namespace: 'sandbox', labels: { 'twokey.dev/critical': 'false' } }));
      await approvedIn({});
      const table = await runTwokey(['scan', '--config', files.policy, '--kubeconfig', config]);
      expect(table.code, table.stdout + table.stderr).toBe(0);
      expect(table.stderr).toContain(
        '2 critical objects, 0 without valid approvals for their current spec, 0 with a critical label that is not "true"',
      );
    } finally {
      await own.stop();
    }
  });
});

describe('an API server at an IPv6 address', () => {
  it('is reached by the CLI (an IPv6 literal keeps its brackets in a URL, not in a host name)', async () => {
    const v6 = new FakeKube({ host: '::1' });
    await v6.start();
    try {
      v6.putNamespace('payments', { 'twokey.dev/critical': 'true' });
      v6.putObject(deployment({ name: 'api', namespace: 'payments' }));
      const config = await v6.writeKubeconfig(join(files.dir, 'kubeconfig-v6'));
      expect(v6.url).toMatch(/^https:\/\/\[::1\]:\d+$/);
      const result = await runTwokey(['scan', '--config', files.policy, '-o', 'json', '--kubeconfig', config]);
      expect(result.stderr).not.toContain('ENOTFOUND');
      expect(result.code, result.stderr).toBe(1);
      expect(JSON.parse(result.stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'api', status: 'unapproved' })]));
    } finally {
      await v6.stop();
    }
  });
});
