/**
 * Warn mode and break-glass through the real kube-apiserver and kubectl: an unapproved apply in a
 * namespace in warn mode is admitted with kubectl printing twokey's warning; a break-glass apply is
 * admitted with one approver, loudly; both leave their Event and their audit annotations; and
 * `kubectl rollout undo` of the break-glass change is a deploy like any other.
 */
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
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
  plane,
  twokey,
  writeManifest,
} from './support.ts';
import { CLUSTER } from './twokey.ts';

const GLASS = 'https://break-glass.e2e.example';
const glassKey = join(plane.twokey.dir, 'break-glass.jwk.json');
let original: string;
let warnNs: string;
let glassNs: string;

interface AuditEvent {
  readonly verb: string;
  readonly objectRef?: { resource?: string; namespace?: string; name?: string };
  readonly annotations?: Record<string, string>;
  readonly responseStatus?: { code?: number };
}

/** The apiserver's audit log entries for a deployment (Metadata level: the webhooks' audit annotations). */
function auditOf(ns: string, name: string): AuditEvent[] {
  return readFileSync(join(plane.stateDir, 'logs', 'audit.log'), 'utf8')
    .split('\n')
    .filter((line) => line.includes(`"namespace":"${ns}"`))
    .map((line) => JSON.parse(line) as AuditEvent)
    .filter((e) => e.objectRef?.resource === 'deployments' && e.objectRef.name === name);
}

async function twokeyEvents(
  ns: string,
  reason: string,
): Promise<Array<{ type: string; message: string; involvedObject: { name: string } }>> {
  const list = (await getJson(['get', 'events', '-n', ns, '--field-selector', `reason=${reason}`])) as {
    items: Array<{ type: string; message: string; involvedObject: { name: string } }>;
  };
  return list.items;
}

async function breakGlass(file: string, digest: string, incident: string): Promise<string> {
  const result = await twokey([
    'approve',
    '--break-glass',
    '--incident',
    incident,
    '--key',
    glassKey,
    '--issuer',
    GLASS,
    '--audience',
    CLUSTER,
    '--approver',
    'dave',
    '--digest',
    digest,
    '-f',
    file,
  ]);
  if (result.code !== 0) throw new Error(`twokey approve --break-glass exited ${result.code}: ${result.stderr}`);
  return result.stdout.trim();
}

beforeAll(async () => {
  warnNs = await namespace('rollout');
  glassNs = await namespace('incident');
  const keygen = await twokey([
    'keygen',
    '--issuer',
    GLASS,
    '--kid',
    'glass-e2e',
    '--private-key',
    glassKey,
    '--jwks',
    join(plane.twokey.dir, 'break-glass.json'),
  ]);
  expect(keygen.code, keygen.stderr).toBe(0);
  // The policy the chart rendered, with one namespace in warn mode and a break-glass issuer; the server reloads it.
  original = await readFile(plane.twokey.policyFile, 'utf8');
  const policy = parse(original) as Record<string, unknown>;
  policy.warnNamespaces = [warnNs];
  policy.breakGlass = { issuer: GLASS, jwksFile: 'break-glass.json', maxTtl: '1h', reviewWindow: '24h' };
  await writeFile(plane.twokey.policyFile, stringify(policy));
  const probe = await writeManifest('probe', deployment({ namespace: warnNs, name: 'probe' }));
  await eventually(
    'the policy in warn mode for the namespace',
    async () => (await kubectl(['apply', '--dry-run=server', '-f', probe])).code === 0,
  );
});

afterAll(async () => {
  if (original !== undefined) await writeFile(plane.twokey.policyFile, original);
});

describe('warn mode, through the real kube-apiserver', () => {
  it('admits an unapproved apply of a critical Deployment, kubectl prints the warning, and an Event and the audit annotations follow', async () => {
    const file = await writeManifest('api', deployment({ namespace: warnNs }));
    const applied = await kubectl(['apply', '-f', file]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toBe('deployment.apps/api created\n');
    expect(applied.stderr).toBe(
      `Warning: twokey (warn mode): would refuse: deploy of deployments.apps ${warnNs}/api: 0 of 2 required approvals\n`,
    );

    const [event] = await eventually('a WouldRefuse Event', async () => {
      const events = await twokeyEvents(warnNs, 'WouldRefuse');
      return events.length > 0 ? events : undefined;
    });
    expect(event).toMatchObject({ type: 'Warning', involvedObject: { name: 'api' } });
    expect(event?.message).toMatch(
      new RegExp(`^twokey \\(warn mode\\): would refuse: deploy of deployments.apps ${warnNs}/api refused: 0 of 2`),
    );

    const audit = await eventually('the audit entry', async () => auditOf(warnNs, 'api').find((e) => e.verb === 'create' && e.annotations));
    expect(audit.annotations).toMatchObject({
      'workloads.twokey.dev/decision': 'admitted',
      'workloads.twokey.dev/mode': 'warn',
      'workloads.twokey.dev/action': 'deploy',
    });
    expect(audit.annotations?.['workloads.twokey.dev/would-refuse']).toMatch(/refused: 0 of 2 required approvals\. Needed:/);

    const scan = await twokey(['scan', '--config', plane.twokey.policyFile, '-o', 'json']);
    const rows = (JSON.parse(scan.stdout) as Array<{ namespace: string; name: string; status: string; criticalBy: string }>).filter(
      (r) => r.namespace === warnNs && r.name === 'api',
    );
    expect(rows.map((r) => [r.criticalBy, r.status])).toEqual([
      ['namespace label', 'would-refuse'],
      ['event', 'would-refuse'],
    ]);
  });

  it('leaves every other namespace enforced', async () => {
    const file = await writeManifest('api', deployment({ namespace: glassNs, name: 'unapproved' }));
    const refused = await kubectl(['apply', '-f', file]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/unapproved refused: 0 of 2/);
  });
});

interface LiveDeployment {
  metadata: { annotations: Record<string, string> };
  spec: { template: { spec: { containers: Array<{ image: string }> } } };
}

describe('break-glass, through the real kube-apiserver', () => {
  let file: string;
  let approvedDigest: string;
  let hotfixDigest: string;
  let firstTokens: Record<string, string>;
  const liveApi = async () => (await getJson(['get', 'deployment', 'api', '-n', glassNs])) as unknown as LiveDeployment;
  /** The ReplicaSet of the Deployment whose pods run `image`. */
  const replicaSetWith = async (image: string) => {
    const list = (await getJson(['get', 'replicasets', '-n', glassNs, '-l', 'app=api'])) as unknown as {
      items: Array<{ metadata: { name: string } } & LiveDeployment>;
    };
    const found = list.items.find((rs) => rs.spec.template.spec.containers[0]?.image === image);
    if (!found) throw new Error(`no ReplicaSet runs ${image}`);
    return found.metadata.name;
  };

  it('starts from a Deployment deployed with two approvals', async () => {
    file = await writeManifest('api', deployment({ namespace: glassNs }));
    approvedDigest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', file])).stderr);
    firstTokens = {
      bob: await approve({ approver: 'bob', digest: approvedDigest, file }),
      carol: await approve({ approver: 'carol', digest: approvedDigest, file }),
    };
    await writeFile(file, stringify(deployment({ namespace: glassNs, annotations: approvalAnnotations(firstTokens) })));
    expect(await kubectl(['apply', '-f', file])).toMatchObject({ code: 0, stderr: '' });
  });

  it('admits a new image with one break-glass approver: dry run, apply, the warning, the Event, the audit annotations and the object', async () => {
    const fix = deployment({ namespace: glassNs, image: 'registry.example/api:1.0.1-hotfix' });
    const fixFile = await writeManifest('api-fix', fix);
    const refused = await kubectl(['apply', '--dry-run=server', '-f', fixFile]);
    expect(refused.code).toBe(1);
    const digest = digestIn(refused.stderr);
    hotfixDigest = digest;
    const token = await breakGlass(fixFile, digest, 'INC-123');
    await writeFile(
      fixFile,
      stringify({ ...fix, metadata: { ...(fix.metadata as object), annotations: { 'twokey.dev/break-glass': token } } }),
    );

    const dryRun = await kubectl(['apply', '--dry-run=server', '-f', fixFile]);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    const applied = await kubectl(['apply', '-f', fixFile]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toBe('deployment.apps/api configured\n');
    expect(applied.stderr).toMatch(/^Warning: twokey: BREAK-GLASS: admitted without two approvals, for incident "INC-123" by "dave"\n/);
    expect(applied.stderr).toMatch(
      /\nWarning: twokey: two approvals of this state are due by 20\d\d-\d\d-\d\dT\d\d:\d\d:\d\dZ; twokey scan reports it until then\n/,
    );

    const [event] = await eventually('a BreakGlass Event', async () => {
      const events = await twokeyEvents(glassNs, 'BreakGlass');
      return events.length > 0 ? events : undefined;
    });
    expect(event).toMatchObject({ type: 'Warning', involvedObject: { name: 'api' } });
    expect(event?.message).toMatch(
      /^twokey: BREAK-GLASS: deploy of deployments.apps .*\/api admitted without two approvals, for incident "INC-123" by "dave"/,
    );
    // The dry run made no Event: one BreakGlass Event for the one real apply.
    expect(await twokeyEvents(glassNs, 'BreakGlass')).toHaveLength(1);

    const audit = await eventually('the audit entry', async () =>
      auditOf(glassNs, 'api').find(
        (e) => e.annotations?.['workloads.twokey.dev/break-glass'] !== undefined && e.responseStatus?.code === 200,
      ),
    );
    expect(audit.annotations).toMatchObject({
      'workloads.twokey.dev/decision': 'admitted',
      'workloads.twokey.dev/break-glass': 'INC-123',
      'workloads.twokey.dev/break-glass-approver': 'dave',
      'workloads.twokey.dev/digest': digest,
    });

    const live = await liveApi();
    expect(live.spec.template.spec.containers[0]?.image).toBe('registry.example/api:1.0.1-hotfix');
    expect(live.metadata.annotations['twokey.dev/break-glass']).toBe(token);

    const scan = await twokey(['scan', '--config', plane.twokey.policyFile, '-o', 'json']);
    expect(scan.code).toBe(1);
    const row = (JSON.parse(scan.stdout) as Array<Record<string, unknown>>).find((r) => r.namespace === glassNs && r.name === 'api');
    expect(row).toMatchObject({ status: 'break-glass', incident: 'INC-123' });
  });

  it('rolls back with kubectl rollout undo on the approvals the old ReplicaSet carries, and needs new ones when they are gone', async () => {
    // kubectl rollout undo sets the old ReplicaSet's template and annotations on the Deployment: a
    // deploy of the old spec, approved by the approvals the Deployment had then (copied to the ReplicaSet).
    const undone = await kubectl(['rollout', 'undo', 'deployment/api', '-n', glassNs]);
    expect(undone.code, undone.stderr).toBe(0);
    // kubectl warns of its own that undo leaves last-applied-configuration behind; twokey has nothing to say.
    expect(undone.stderr).not.toMatch(/twokey/);
    let live = await liveApi();
    expect(live.spec.template.spec.containers[0]?.image).toBe('registry.example/api:1.0');
    expect(live.metadata.annotations['twokey.dev/break-glass']).toBeUndefined();
    expect(live.metadata.annotations['approval.twokey.dev/bob']).toBe(firstTokens.bob);

    // Back to the hotfix: its ReplicaSet carries the break-glass token, which is taken away here.
    const hotfix = await replicaSetWith('registry.example/api:1.0.1-hotfix');
    await kubectlOk(['annotate', 'replicaset', hotfix, '-n', glassNs, 'twokey.dev/break-glass-']);
    const refused = await kubectl(['rollout', 'undo', 'deployment/api', '-n', glassNs]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused: 0 of 2 required approvals/);
    expect(digestIn(refused.stderr)).toBe(hotfixDigest);

    // Approvals of that digest, attached to the ReplicaSet (not gated), come with the undo.
    const tokens = {
      bob: await approve({ approver: 'bob', digest: hotfixDigest, file, change: 'CHG-INC-123' }),
      carol: await approve({ approver: 'carol', digest: hotfixDigest, file, change: 'CHG-INC-123' }),
    };
    await kubectlOk([
      'annotate',
      'replicaset',
      hotfix,
      '-n',
      glassNs,
      '--overwrite',
      ...Object.entries(approvalAnnotations(tokens)).map(([key, value]) => `${key}=${value}`),
    ]);
    const again = await kubectl(['rollout', 'undo', 'deployment/api', '-n', glassNs]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).not.toMatch(/twokey/);
    live = await liveApi();
    expect(live.spec.template.spec.containers[0]?.image).toBe('registry.example/api:1.0.1-hotfix');
    expect(live.metadata.annotations['approval.twokey.dev/bob']).toBe(tokens.bob);
  });
});
