/**
 * The plan flow on the command line, in process: `twokey plan` of rendered manifests, one
 * `twokey approve --plan` token per approver for a change of 120 objects, `twokey attach` of both
 * to every object, and the webhook's rule admitting each object; and bad input named.
 */
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { decide } from '../../src/decision/decide.ts';
import { NO_CLUSTER_VIEW } from '../../src/decision/gate.ts';
import type { JsonObject } from '../../src/json.ts';
import { planApproveArgs } from '../control-plane/commands.ts';
import { twokey } from '../support/cli.ts';
import { CLUSTER, deployment, ISSUER, type Issuer, makeIssuer, makeSnapshot, request } from '../support/world.ts';

const COUNT = 120;
let dir: string;
let issuer: Issuer;
let rendered: string;

/** What `helm template` writes: documents without a namespace, a Service among them. */
const manifest = (objects: readonly JsonObject[]) =>
  objects
    .map((object) => {
      const { status: _s, ...rest } = object;
      const meta = { ...(rest.metadata as JsonObject) };
      for (const field of ['namespace', 'uid', 'generation', 'creationTimestamp', 'annotations']) delete meta[field];
      return `# Source: shop/templates/${meta.name}.yaml\n${stringify({ ...rest, metadata: meta })}`;
    })
    .join('---\n');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'twokey-plan-'));
  issuer = await makeIssuer();
  await writeFile(join(dir, 'change.jwk.json'), JSON.stringify(issuer.privateJwk));
  const deployments = Array.from({ length: COUNT }, (_, i) =>
    deployment({ name: `svc-${String(i).padStart(3, '0')}`, labels: { 'twokey.dev/critical': 'true' } }),
  );
  rendered = `${manifest(deployments)}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n`;
  await writeFile(join(dir, 'rendered.yaml'), rendered);
});

const approveArgs = (approver: string) =>
  planApproveArgs(join(dir, 'change.jwk.json'), ISSUER, CLUSTER, { plan: join(dir, 'plan.json'), approver, change: 'CHG-120' });

describe('twokey plan, approve --plan and attach', () => {
  it('approves a change of 120 objects with one token per approver, which the webhook counts on each object', async () => {
    const plan = await twokey(['plan', '-f', join(dir, 'rendered.yaml'), '-n', 'payments', '-o', 'json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stderr).toMatch(/without --server, the digests are of the files as written/);
    const document = JSON.parse(plan.stdout) as { digest: string; source: string; entries: unknown[]; objects: Array<{ note?: string }> };
    expect(document.source).toBe('files');
    expect(document.entries).toHaveLength(COUNT);
    expect(document.objects).toHaveLength(COUNT + 1);
    await writeFile(join(dir, 'plan.json'), plan.stdout);

    await mkdir(join(dir, 'approvals'));
    for (const approver of ['bob@example.com', 'carol@example.com']) {
      const token = await twokey(approveArgs(approver));
      expect(token.code, token.stderr).toBe(0);
      await writeFile(join(dir, 'approvals', `${approver}.jwt`), token.stdout);
    }
    const attached = await twokey(['attach', '--approvals', join(dir, 'approvals'), '--plan', join(dir, 'plan.json'), '-n', 'payments'], {
      input: rendered,
    });
    expect(attached.code, attached.stderr).toBe(0);

    const snapshot = await makeSnapshot([issuer]);
    const objects = parseAllDocuments(attached.stdout).map((d) => d.toJS() as JsonObject);
    expect(objects).toHaveLength(COUNT + 1);
    for (const object of objects.slice(0, COUNT)) {
      (object.metadata as JsonObject).namespace = 'payments';
      const verdict = await decide(request({ operation: 'CREATE', object, user: 'deployer@example.com' }), {
        ...snapshot,
        namespaces: NO_CLUSTER_VIEW,
        forceCritical: false,
        now: Math.floor(Date.now() / 1000),
      });
      expect(verdict.message).toBeUndefined();
      expect(verdict.approvers).toEqual(['bob@example.com', 'carol@example.com']);
    }
    expect(objects[COUNT]?.metadata).toEqual({ name: 'web' });

    // twokey check judges with the same rule, and refuses an object changed after the plan.
    await writeFile(join(dir, 'jwks.json'), JSON.stringify(issuer.jwks));
    await writeFile(join(dir, 'policy.yaml'), `cluster: ${CLUSTER}\nissuers:\n  - issuer: ${ISSUER}\n    jwksFile: jwks.json\n`);
    await writeFile(join(dir, 'attached.yaml'), attached.stdout);
    const check = (file: string) =>
      twokey(['check', '--config', join(dir, 'policy.yaml'), '-f', file, '-n', 'payments', '--user', 'deployer@example.com']);
    const checked = await check(join(dir, 'attached.yaml'));
    expect(checked.code, checked.stdout + checked.stderr).toBe(0);
    await writeFile(join(dir, 'changed.yaml'), attached.stdout.replace('registry.example.com/api:1.0.0', 'registry.example.com/api:6.6.6'));
    const changed = await check(join(dir, 'changed.yaml'));
    expect(changed.code).toBe(1);
    expect(changed.stdout).toMatch(/not the one planned/);
  });

  it('prints each object, gated or not, and the plan digest', async () => {
    const shown = await twokey(['plan', '-f', join(dir, 'rendered.yaml'), '-n', 'payments']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      /^deployments\.apps payments\/svc-000 \(.*rendered\.yaml, document 1\): gated\n {2}deploy sha256:[0-9a-f]{64}$/m,
    );
    expect(shown.stdout).toMatch(/^Service\.v1 web .*: not gated: twokey gates no such kind$/m);
    expect(shown.stdout).toMatch(/^plan sha256:[0-9a-f]{64}: 120 entries/m);
  });

  it('refuses bad input, naming the object', async () => {
    const noNamespace = await twokey(['plan', '-f', join(dir, 'rendered.yaml')]);
    expect(noNamespace.code).toBe(2);
    expect(noNamespace.stderr).toMatch(/document 1: Deployment svc-000 names no namespace; give one with -n/);
    const twice = await twokey(['plan', '-f', join(dir, 'rendered.yaml'), '-f', '-', '-n', 'payments'], { input: rendered });
    expect(twice.code).toBe(2);
    expect(twice.stderr).toMatch(/Deployment payments\/svc-000 is in .*rendered\.yaml, document 1 and again in stdin, document 1/);
    const duplicate = await twokey(['plan', '-f', '-', '-n', 'p'], {
      input:
        'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n',
    });
    expect(duplicate.code).toBe(2);
    expect(duplicate.stderr).toMatch(/Deployment p\/a is in stdin, document 1 and again in stdin, document 2/);
    const notKubernetes = await twokey(['plan', '-f', '-', '-n', 'p'], { input: 'name: x\nvalue: 1\n' });
    expect(notKubernetes.code).toBe(2);
    expect(notKubernetes.stderr).toMatch(/stdin, document 1 is not a Kubernetes object/);
  });

  it('attaches nothing when approvals and manifests disagree, saying why', async () => {
    const other = await twokey(['attach', '--approvals', join(dir, 'approvals'), '--plan', join(dir, 'plan.json'), '-n', 'payments'], {
      input: rendered.replace('name: svc-007', 'name: svc-new'),
    });
    expect(other.code).toBe(2);
    expect(other.stdout).toBe('');
    expect(other.stderr).toMatch(/the plan holds the deploy of deployments\.apps payments\/svc-007, which the manifests do not hold/);
    const noPlan = await twokey(['attach', '--approvals', join(dir, 'approvals'), '-n', 'payments'], { input: rendered });
    expect(noPlan.code).toBe(2);
    expect(noPlan.stderr).toMatch(/approves plan sha256:[0-9a-f]{64}: give the plan \(--plan\)/);
    const approveBoth = await twokey([...approveArgs('bob@example.com'), '-f', join(dir, 'rendered.yaml')]);
    expect(approveBoth.code).toBe(2);
    expect(approveBoth.stderr).toMatch(/--plan approves the whole plan/);
  });
});
