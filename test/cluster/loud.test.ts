/**
 * The trails warn mode and break-glass leave, through the webhook as kube-apiserver calls it:
 * the kubectl warning, the audit annotations, the Event on the object, the metric, the log line,
 * and what `twokey scan` then reports.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterClient } from '../../src/cluster/client.ts';
import { connectCluster } from '../../src/cluster/integration.ts';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { KubeRest } from '../../src/cluster/rest.ts';
import { scanCluster } from '../../src/cluster/scan.ts';
import { loadSnapshot } from '../../src/config/store.ts';
import type { JsonObject } from '../../src/json.ts';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { twokey } from '../support/cli.ts';
import { FakeKube } from '../support/fake-kube.ts';
import { endpointOf, eventually, policyYaml, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import { captureLog } from '../support/log.ts';
import { rawToken } from '../support/tokens.ts';
import {
  admissionReview,
  approve,
  BREAK_GLASS_ISSUER,
  bindingFor,
  breakGlass,
  deployment,
  type Issuer,
  makeIssuer,
  type ReviewOptions,
  withAnnotations,
} from '../support/world.ts';

let kube: FakeKube;
let files: ServerFiles;
let issuer: Issuer;
let glass: Issuer;
let server: RunningServer;
let kubeconfig: string;
const log = captureLog();
const BG = 'twokey.dev/break-glass';

beforeAll(async () => {
  kube = new FakeKube();
  await kube.start();
  issuer = await makeIssuer();
  glass = await makeIssuer(BREAK_GLASS_ISSUER, 'EdDSA', 'glass-1');
  files = await serverFiles(issuer);
  await writeFile(join(files.dir, 'break-glass.json'), JSON.stringify(glass.jwks));
  await files.writePolicy(
    policyYaml(
      issuer.issuer,
      `warnNamespaces: [rollout]\nbreakGlass:\n  issuer: ${glass.issuer}\n  jwksFile: break-glass.json\n  reviewWindow: 24h\n`,
    ),
  );
  kube.putNamespace('payments');
  // Critical by its label, in warn mode by the policy's list.
  kube.putNamespace('rollout', { 'twokey.dev/critical': 'true' });
  kubeconfig = await kube.writeKubeconfig(join(files.dir, 'kubeconfig'));
  server = await serveFiles(files, {
    logger: log.logger,
    cluster: (context) => connectCluster(loadKubeConfig({ kubeconfig }), { ...context, eventRecorder: { updateIntervalMs: 0 } }),
  });
  await eventually(async () => (await server.app.inject('/readyz')).statusCode === 200);
});
afterAll(async () => {
  await server?.shutdown();
  await kube?.stop();
  await files?.cleanup();
});

const call = (options: ReviewOptions) => callWebhook(endpointOf(server, files), admissionReview(options));
const eventsFor = (name: string) => kube.events.filter((e) => (e.involvedObject as JsonObject).name === name);
const logLines = (msg: string) => log.lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === msg);
const metrics = async () => (await server.app.inject('/metrics')).body;
const scan = async (now: number) =>
  scanCluster(new ClusterClient(new KubeRest(loadKubeConfig({ kubeconfig }))), await loadSnapshot(files.policy, () => {}), { now });

describe('warn mode', () => {
  it('admits an unapproved deploy in a namespace the policy lists, and leaves the whole trail', async () => {
    const object = deployment({ name: 'warned-api', namespace: 'rollout' });
    const outcome = await call({ operation: 'CREATE', object, user: 'alice' });
    expect(outcome).toMatchObject({
      kind: 'allowed',
      warnings: ['twokey (warn mode): would refuse: deploy of deployments.apps rollout/warned-api: 0 of 2 required approvals'],
    });
    const audit = outcome.kind === 'allowed' ? outcome.auditAnnotations : {};
    expect(audit).toMatchObject({ decision: 'admitted', mode: 'warn', action: 'deploy' });
    expect(audit['would-refuse']).toMatch(/^deploy of deployments.apps rollout\/warned-api refused: 0 of 2 required approvals\. Needed:/);

    await eventually(() => eventsFor('warned-api').length === 1);
    expect(eventsFor('warned-api')[0]).toMatchObject({ type: 'Warning', reason: 'WouldRefuse', action: 'Deploy' });
    expect(String(eventsFor('warned-api')[0]?.message)).toMatch(
      /^twokey \(warn mode\): would refuse: deploy of deployments.apps rollout\/warned-api refused: 0 of 2/,
    );
    expect(await metrics()).toContain('twokey_would_refuse_total{action="deploy",reason="no-approvals",dry_run="false"} 1');
    expect(await metrics()).toContain(
      'twokey_admission_reviews_total{verdict="admitted",action="deploy",dry_run="false",route="/validate"} 1',
    );
    const [line] = logLines('would refuse (warn mode)').filter((l) => l.name === 'warned-api');
    expect(line).toMatchObject({
      level: 40,
      namespace: 'rollout',
      action: 'deploy',
      scope: 'namespace',
      reason: 'no-approvals',
      user: 'alice',
    });
    expect(logLines('admission decision').find((l) => l.name === 'warned-api')).toMatchObject({ verdict: 'admitted', mode: 'warn' });

    // The scan shows the live object, and the past request from its Event.
    kube.putObject(object);
    const rows = (await scan(Date.now() / 1000)).filter((r) => r.name === 'warned-api');
    expect(rows).toEqual([
      expect.objectContaining({ criticalBy: 'namespace label', status: 'would-refuse' }),
      expect.objectContaining({ criticalBy: 'event', status: 'would-refuse' }),
    ]);
    expect(rows[0]?.detail).toMatch(/^admitted in warn mode, enforce mode would refuse: 0 of 2 required approvals/);
    expect(rows[1]?.detail).toMatch(
      /^1 request admitted in warn mode, the last at 20\d\d-.*: twokey \(warn mode\): would refuse: deploy of/,
    );
  });

  it('refuses the same deploy in a namespace the policy does not list', async () => {
    expect((await call({ operation: 'CREATE', object: deployment({ name: 'enforced-api' }) })).kind).toBe('denied');
  });

  it('never relaxes what is not a review: a body twokey cannot read is still HTTP 400', async () => {
    const response = await server.app.inject({
      method: 'POST',
      url: '/validate',
      payload: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'x' } },
    });
    expect(response.statusCode).toBe(400);
  });
});

describe('break-glass', () => {
  it('admits the change its token names with one approver, and leaves the whole trail', async () => {
    const object = deployment({ name: 'glass-api' });
    const token = await breakGlass(glass, [bindingFor('deploy', object)], {
      approver: 'dave@example.com',
      incident: 'INC-123',
      now: Date.now() / 1000,
    });
    const outcome = await call({ operation: 'CREATE', object: withAnnotations(object, { [BG]: token }), user: 'alice' });
    expect(outcome.kind).toBe('allowed');
    if (outcome.kind !== 'allowed') return;
    expect(outcome.warnings[0]).toBe('twokey: BREAK-GLASS: admitted without two approvals, for incident "INC-123" by "dave@example.com"');
    expect(outcome.warnings[1]).toMatch(/^twokey: two approvals of this state are due by /);
    expect(outcome.auditAnnotations).toMatchObject({
      decision: 'admitted',
      'break-glass': 'INC-123',
      'break-glass-approver': 'dave@example.com',
    });

    await eventually(() => eventsFor('glass-api').length === 1);
    expect(eventsFor('glass-api')[0]).toMatchObject({ type: 'Warning', reason: 'BreakGlass', action: 'Deploy' });
    expect(String(eventsFor('glass-api')[0]?.message)).toMatch(
      /^twokey: BREAK-GLASS: deploy of deployments.apps payments\/glass-api admitted without two approvals, for incident "INC-123" by "dave@example.com" \(deploy sha256:[0-9a-f]{64}\); two approvals of this state are due by /,
    );
    expect(await metrics()).toContain('twokey_break_glass_admissions_total{action="deploy",dry_run="false"} 1');
    const [line] = logLines('break-glass admission');
    expect(line).toMatchObject({ level: 50, name: 'glass-api', incident: 'INC-123', approver: 'dave@example.com', user: 'alice' });
  });

  it('records each incident and approver in an Event of its own, however soon another break-glass of the same change follows', async () => {
    const object = deployment({ name: 'twice-glass' });
    const admit = async (incident: string, approver: string) => {
      const token = await breakGlass(glass, [bindingFor('deploy', object)], { approver, incident, now: Date.now() / 1000 });
      const outcome = await call({ operation: 'CREATE', object: withAnnotations(object, { [BG]: token }), user: 'alice' });
      expect(outcome.kind).toBe('allowed');
    };
    await admit('INC-1', 'dave@example.com');
    await eventually(() => eventsFor('twice-glass').length === 1);
    await admit('INC-2', 'erin@example.com');
    await eventually(() => eventsFor('twice-glass').length === 2);
    const messages = eventsFor('twice-glass').map((e) => String(e.message));
    expect(messages.some((m) => m.includes('incident "INC-1" by "dave@example.com"'))).toBe(true);
    expect(messages.some((m) => m.includes('incident "INC-2" by "erin@example.com"'))).toBe(true);
    // The same token again is the same decision: its Event's count grows.
    await admit('INC-2', 'erin@example.com');
    await eventually(() => eventsFor('twice-glass').some((e) => e.count === 2));
    expect(eventsFor('twice-glass')).toHaveLength(2);
  });

  it('is refused, saying why, for the user who approved it', async () => {
    const object = deployment({ name: 'self-glass' });
    const token = await breakGlass(glass, [bindingFor('deploy', object)], { approver: 'alice', now: Date.now() / 1000 });
    const outcome = await call({ operation: 'CREATE', object: withAnnotations(object, { [BG]: token }), user: 'alice' });
    expect(outcome.kind).toBe('denied');
    expect(outcome.kind === 'denied' && outcome.message).toMatch(
      /The break-glass token \(twokey.dev\/break-glass\) did not count: its approver "alice"/,
    );
    expect(await metrics()).not.toContain('twokey_break_glass_admissions_total{action="deploy",dry_run="false"} 2');
  });

  it('is a scan finding until two approvals of the state it let through follow within the review window', async () => {
    const created = Date.parse('2026-11-29T03:00:00Z') / 1000;
    const base = deployment({ name: 'night-fix' });
    (base.metadata as JsonObject).creationTimestamp = '2026-11-29T03:00:00Z';
    // Bound to the object as the cluster stores it, server defaults and all.
    const stored = kube.putObject(base);
    const token = await breakGlass(glass, [bindingFor('deploy', stored)], {
      approver: 'dave@example.com',
      incident: 'INC-9',
      now: created - 60,
    });
    kube.putObject(withAnnotations(stored, { [BG]: token }));
    const row = async (now: number) => (await scan(now)).find((r) => r.name === 'night-fix');

    expect(await row(created + 3600)).toMatchObject({ status: 'break-glass', incident: 'INC-9', reviewBy: '2026-11-30T02:59:00Z' });
    expect((await row(created + 3600))?.detail).toMatch(
      /^admitted by break-glass for incident "INC-9" by "dave@example.com" at 2026-11-29T02:59:00Z without two approvals; two approvals of its current state are due by 2026-11-30T02:59:00Z/,
    );
    expect(await row(created + 2 * 86400)).toMatchObject({ status: 'break-glass-overdue' });
    expect((await row(created + 2 * 86400))?.detail).toMatch(/were due by 2026-11-30T02:59:00Z/);

    // Two approvals, but after the window: still overdue.
    const late = async (now: number) =>
      withAnnotations(stored, {
        [BG]: token,
        'approval.twokey.dev/bob': await approve(issuer, 'deploy', stored, { approver: 'bob@example.com', now, change: 'CHG-REVIEW' }),
        'approval.twokey.dev/carol': await approve(issuer, 'deploy', stored, { approver: 'carol@example.com', now, change: 'CHG-REVIEW' }),
      });
    kube.putObject(await late(created + 30 * 3600));
    expect(await row(created + 2 * 86400)).toMatchObject({ status: 'break-glass-overdue' });
    kube.putObject(await late(created + 2 * 3600));
    expect(await row(created + 2 * 86400)).toMatchObject({
      status: 'approved',
      change: 'CHG-REVIEW',
      approvers: ['bob@example.com', 'carol@example.com'],
    });
    expect((await row(created + 2 * 86400))?.detail).toMatch(/; reviewed: CHG-REVIEW approved by bob@example.com, carol@example.com$/);
  });

  it('is not reviewed by approvals issued before the token, whatever issue time another annotation claims', async () => {
    const created = Date.parse('2026-11-28T03:00:00Z') / 1000;
    const base = deployment({ name: 'stale-review' });
    (base.metadata as JsonObject).creationTimestamp = '2026-11-28T03:00:00Z';
    const stored = kube.putObject(base);
    const token = await breakGlass(glass, [bindingFor('deploy', stored)], {
      approver: 'dave@example.com',
      incident: 'INC-10',
      now: created - 1200,
      ttlSeconds: 1800,
    });
    // Approvals of this very state, issued an hour before the incident: expired when it was applied
    // (so the token let it through), still valid for a while after the token was issued.
    const before = created - 3900;
    const stale = {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', stored, { approver: 'bob@example.com', now: before }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', stored, { approver: 'carol@example.com', now: before }),
    };
    // An unsigned token whose claimed issue time falls in the window, to set the scan's clock.
    const clock = rawToken(issuer, { payload: { iat: created - 1000 }, signWith: { kind: 'none' } });
    const row = async (now: number) => (await scan(now)).find((r) => r.name === 'stale-review');

    kube.putObject(withAnnotations(stored, { [BG]: token, ...stale }));
    expect(await row(created + 3600)).toMatchObject({ status: 'break-glass', incident: 'INC-10' });
    kube.putObject(withAnnotations(stored, { [BG]: token, ...stale, 'approval.twokey.dev/clock': clock }));
    expect(await row(created + 3600)).toMatchObject({ status: 'break-glass', incident: 'INC-10' });
    expect(await row(created + 2 * 86400)).toMatchObject({ status: 'break-glass-overdue' });
  });

  it('is told by twokey check, offline, as the webhook tells it', async () => {
    const object = deployment({ name: 'checked' });
    const token = await breakGlass(glass, [bindingFor('deploy', object)], { approver: 'dave@example.com', now: Date.now() / 1000 });
    const manifest = join(files.dir, 'checked.json');
    await writeFile(manifest, JSON.stringify(withAnnotations(object, { [BG]: token })));
    const result = await twokey(['check', '--config', files.policy, '-f', manifest, '--user', 'alice']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain(
      'Warning: twokey: BREAK-GLASS: admitted without two approvals, for incident "INC-123" by "dave@example.com"',
    );
    expect(result.stdout).toMatch(/deployments.apps payments\/checked: admitted \(admitted by break-glass: deploy of/);
    const self = await twokey(['check', '--config', files.policy, '-f', manifest, '--user', 'dave@example.com']);
    expect(self.code).toBe(1);
    expect(self.stdout).toMatch(/did not count: its approver "dave@example.com" is the user making this request/);
  });
});
