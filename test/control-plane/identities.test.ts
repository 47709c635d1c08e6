/**
 * Identities as the real API server sends them to twokey: impersonated users and groups, service
 * accounts (by token and impersonated), and system:masters, which gets no way around the rule.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { approvalAnnotations, approve, decisions, deployment, digestIn, kubectl, namespace, writeManifest } from './support.ts';

describe('who twokey sees making a request', () => {
  let ns: string;
  let file: string;
  let digest: string;

  beforeAll(async () => {
    ns = await namespace('who');
    file = await writeManifest('api', deployment({ namespace: ns }));
    digest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', file])).stderr);
  });

  const lastUser = () =>
    decisions()
      .filter((d) => d.namespace === ns && d.dryRun)
      .at(-1)?.user;

  it.each([
    ['the admin, in system:masters (no way around the rule)', [], 'twokey-e2e-admin'],
    ['an impersonated user with groups', ['--as=erin', '--as-group=developers', '--as-group=sre'], 'erin'],
    ['a service account by its token', ['--context', 'agent'], 'system:serviceaccount:ci:agent'],
    ['an impersonated service account', ['--as=system:serviceaccount:ci:agent'], 'system:serviceaccount:ci:agent'],
    ['a person by client certificate', ['--context', 'alice'], 'alice'],
  ])('%s: refused without approvals, named as the requester', async (_who, args, user) => {
    const result = await kubectl([...args, 'apply', '--dry-run=server', '-f', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `refused: 0 of 2 required approvals. Needed: 2 approvals of one change id from distinct approvers who are neither "${user}" (making this request)`,
    );
    expect(lastUser()).toBe(user);
  });

  it("does not count the agent's own approval when the agent applies, by token or impersonated", async () => {
    const tokens = {
      agent: await approve({ approver: 'system:serviceaccount:ci:agent', digest, file }),
      bob: await approve({ approver: 'bob', digest, file }),
    };
    const approvedFile = await writeManifest('api-approved', deployment({ namespace: ns, annotations: approvalAnnotations(tokens) }));
    for (const args of [['--context', 'agent'], ['--as=system:serviceaccount:ci:agent']]) {
      const result = await kubectl([...args, 'apply', '--dry-run=server', '-f', approvedFile]);
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /refused: 1 of 2 required approvals .*approver "system:serviceaccount:ci:agent" is the user making this request/,
      );
    }
    // Applied by a person who approved neither, the same two approvals count.
    const byAlice = await kubectl(['--context', 'alice', 'apply', '--dry-run=server', '-f', approvedFile]);
    expect(byAlice.code, byAlice.stderr).toBe(0);
  });
});
