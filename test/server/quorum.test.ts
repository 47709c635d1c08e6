/**
 * The rules beyond a count through the webhook, as kube-apiserver calls it: an AdmissionReview in,
 * a refusal naming the mapped user, the missing countersignature, or the missing group.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { ConfigSnapshot } from '../../src/config/store.ts';
import { buildApp } from '../../src/server/app.ts';
import {
  type Approver,
  admissionReview,
  approvalAnnotations,
  approve,
  countersigned,
  deployment,
  type Issuer,
  makeApprover,
  makeIssuer,
  makePolicy,
  makeRegistrySnapshot,
  NOW,
  registryEntry,
  withAnnotations,
} from '../support/world.ts';

/** A change system, two approvers in the registry (bob in sre), and the snapshot the webhook judges with. */
interface World {
  readonly issuer: Issuer;
  readonly bob: Approver;
  readonly carol: Approver;
  readonly snapshot: ConfigSnapshot;
}
let world: World;
const api = deployment();

beforeAll(async () => {
  const issuer = await makeIssuer();
  const [bob, carol] = (await Promise.all(['bob@example.com', 'carol@example.com'].map((id) => makeApprover(id)))) as [Approver, Approver];
  const snapshot = await makeRegistrySnapshot(
    [issuer],
    makePolicy({
      identities: { rules: [{ stripPrefix: 'oidc:' }, { suffix: '@example.com' }] },
      approvals: { countersign: true, rules: [{ groups: [{ group: 'sre', atLeast: 1 }] }] },
      approvers: [
        registryEntry(bob, ['sre']),
        registryEntry(carol),
        { identity: 'alice@example.com', jwks: { keys: [] }, groups: ['sre'] },
      ],
    }),
  );
  world = { issuer, bob, carol, snapshot };
});

async function review(tokens: Record<string, string>, user: string) {
  const app = buildApp({ config: { current: () => world.snapshot }, clock: () => NOW });
  const object = withAnnotations(api, approvalAnnotations(tokens));
  const response = await app.inject({
    method: 'POST',
    url: '/validate?timeout=10s',
    payload: admissionReview({ operation: 'CREATE', object, user }) as object,
    headers: { 'content-type': 'application/json' },
  });
  return response.json().response as { allowed: boolean; status?: { message: string } };
}

const token = async (approver: Approver) =>
  countersigned(approver, await approve(world.issuer, 'deploy', api, { approver: approver.identity }));

describe('the webhook with identities, countersignatures and groups', () => {
  it('admits two countersigned approvals, one of them from the group', async () => {
    expect(await review({ bob: await token(world.bob), carol: await token(world.carol) }, 'oidc:erin@example.com')).toMatchObject({
      allowed: true,
    });
  });

  it('refuses a self-approval behind the prefix, naming the mapped user', async () => {
    const answer = await review({ bob: await token(world.bob), carol: await token(world.carol) }, 'oidc:bob@example.com');
    expect(answer.allowed).toBe(false);
    expect(answer.status?.message).toContain(
      'approver "bob@example.com" is the user making this request, "bob@example.com" (from "oidc:bob@example.com")',
    );
    expect(answer.status?.message).toContain('still missing: 1 more approval from group "sre" (0 of 1)');
  });

  it('refuses approvals the change system signed without their approvers', async () => {
    const compact = await approve(world.issuer, 'deploy', api, { approver: world.carol.identity });
    const answer = await review({ bob: await token(world.bob), carol: compact }, 'erin@example.com');
    expect(answer.allowed).toBe(false);
    expect(answer.status?.message).toMatch(/approval.twokey.dev\/carol: is a compact JWS/);
  });

  it('refuses a user no rule maps, naming the user', async () => {
    const answer = await review({ bob: await token(world.bob), carol: await token(world.carol) }, 'system:admin');
    expect(answer.allowed).toBe(false);
    expect(answer.status?.message).toContain('the requesting user "system:admin" matches no identities rule');
  });
});
