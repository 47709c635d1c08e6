/**
 * What people see besides kubectl's answer, against the real API server: the Events twokey
 * records, and `twokey scan`, `twokey check --server` and `twokey digest --server` giving the
 * verdicts the webhook gives.
 */
import { beforeAll, describe, expect, it } from 'vitest';
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
  plane,
  twokey,
  writeManifest,
} from './support.ts';

interface CoreEvent {
  readonly reason: string;
  readonly type: string;
  readonly message: string;
  readonly involvedObject: { readonly name: string; readonly kind: string };
  readonly count?: number;
}

async function eventsOf(ns: string, name: string): Promise<CoreEvent[]> {
  const list = (await getJson(['get', 'events', '-n', ns, '--field-selector', `involvedObject.name=${name}`])) as { items: CoreEvent[] };
  return list.items;
}

describe('twokey and its tools against the real API server', () => {
  let ns: string;
  let file: string;
  let approvedFile: string;

  beforeAll(async () => {
    ns = await namespace('tools');
    file = await writeManifest('api', deployment({ namespace: ns }));
    // An unapproved critical workload: made before its namespace became critical.
    const legacy = await namespace('tools-legacy', { critical: false });
    await kubectlOk(['apply', '-f', await writeManifest('legacy', deployment({ name: 'legacy', namespace: legacy }))]);
    await kubectlOk(['label', 'namespace', legacy, 'twokey.dev/critical=true']);
  });

  it('records a Warning Event when it refuses a change, and none for dry runs', async () => {
    const refused = await kubectl(['--context', 'agent', 'apply', '-f', file]);
    expect(refused.code).toBe(1);
    const events = await eventually('a ChangeRefused Event', async () => {
      const found = await eventsOf(ns, 'api');
      return found.length > 0 ? found : undefined;
    });
    expect(events).toEqual([
      expect.objectContaining({
        reason: 'ChangeRefused',
        type: 'Warning',
        involvedObject: expect.objectContaining({ kind: 'Deployment', name: 'api' }),
        message: expect.stringMatching(/^twokey: deploy of deployments\.apps .*\/api refused: 0 of 2 required approvals/),
      }),
    ]);
    const shown = await kubectlOk(['get', 'events', '-n', ns]);
    expect(shown).toMatch(/Warning\s+ChangeRefused\s+deployment\/api\s+twokey: deploy of deployments\.apps/);
    await kubectl(['apply', '--dry-run=server', '-f', file]);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect((await eventsOf(ns, 'api')).map((e) => e.count ?? 1)).toEqual([1]);
  });

  it('twokey check --server prints the refusal exactly as kubectl apply does, and digest --server its digest', async () => {
    const dryRun = await kubectl(['apply', '--dry-run=server', '-f', file]);
    const check = await twokey(['check', '--server', '--config', plane.twokey.policyFile, '-f', file]);
    expect(check.code).toBe(1);
    expect(check.stdout).toBe(dryRun.stderr);
    const digest = digestIn(dryRun.stderr);
    expect((await twokey(['digest', '--server', '-f', file])).stdout).toBe(`${digest}  deployments.apps ${ns}/api\n`);
  });

  it('admits with approvals, records a Normal Event naming the change and approvers, and twokey check --server agrees', async () => {
    const digest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', file])).stderr);
    const tokens = {
      bob: await approve({ approver: 'bob', change: 'CHG-TOOLS', digest, file }),
      carol: await approve({ approver: 'carol', change: 'CHG-TOOLS', digest, file }),
    };
    approvedFile = await writeManifest('api-approved', deployment({ namespace: ns, annotations: approvalAnnotations(tokens) }));
    const check = await twokey(['check', '--server', '--config', plane.twokey.policyFile, '-f', approvedFile, '-o', 'json']);
    expect(check.code, check.stderr).toBe(0);
    const [verdict] = JSON.parse(check.stdout) as Array<{ allowed: boolean; change: string; approvers: string[]; digest: string }>;
    expect(verdict).toMatchObject({ allowed: true, change: 'CHG-TOOLS', approvers: ['bob', 'carol'], digest });

    await kubectlOk(['apply', '-f', approvedFile]);
    const webhook = await eventually('the decision logged', async () =>
      decisions()
        .filter((d) => d.namespace === ns && d.name === 'api' && !d.dryRun && d.verdict === 'admitted')
        .at(-1),
    );
    expect(webhook.digest).toBe(digest);
    const approved = await eventually('a ChangeApproved Event', async () =>
      (await eventsOf(ns, 'api')).find((e) => e.reason === 'ChangeApproved'),
    );
    expect(approved).toMatchObject({
      type: 'Normal',
      message: `twokey: deploy of deployments.apps ${ns}/api approved for CHG-TOOLS by bob, carol (digest ${digest})`,
    });
  });

  it('twokey scan reports what the webhook would: the approved workload approved, the one deployed before it was critical unapproved', async () => {
    const scan = await twokey(['scan', '--config', plane.twokey.policyFile, '-o', 'json']);
    expect(scan.code).toBe(1);
    const rows = JSON.parse(scan.stdout) as Array<{ namespace: string; name: string; status: string; change?: string; digest?: string }>;
    const api = rows.find((r) => r.namespace === ns && r.name === 'api');
    const live = decisions()
      .filter((d) => d.namespace === ns && d.name === 'api' && d.verdict === 'admitted' && !d.dryRun)
      .at(-1);
    expect(api).toMatchObject({ status: 'approved', change: 'CHG-TOOLS', digest: live?.digest });
    expect(rows.find((r) => r.name === 'legacy')).toMatchObject({ status: 'unapproved' });
    expect(rows.find((r) => r.namespace === '' && r.name === ns)).toMatchObject({ status: 'protected' });
  });
});
