/**
 * Countersigned approvals and identities through the real API server: with approvals.countersign
 * on, two approvals the change system's key minted without their approvers' signatures are refused
 * by kubectl apply, and the same approvals countersigned are admitted; with an identities rule for
 * the OIDC prefix, a self-approval by oidc:alice@example.com is refused. The test rewrites the
 * installed policy file (the server reloads it) and puts the original back after.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { generateIssuerKey } from '../../src/keys/signing.ts';
import {
  approvalAnnotations,
  approve,
  deployment,
  digestIn,
  eventually,
  kubectl,
  namespace,
  plane,
  twokey,
  writeManifest,
} from './support.ts';

const APPROVERS = ['alice@example.com', 'bob@example.com', 'carol@example.com'] as const;
let original: string;
const keyFile = (approver: string) => join(plane.twokey.dir, `${approver}.jwk.json`);

/** The token countersigned by its approver with `twokey countersign`, as the approver would run it. */
async function countersign(approver: string, token: string): Promise<string> {
  const result = await twokey(['countersign', '--private-key', keyFile(approver)], { input: token });
  if (result.code !== 0) throw new Error(`twokey countersign exited ${result.code}: ${result.stderr}`);
  return result.stdout.trim();
}

beforeAll(async () => {
  original = await readFile(plane.twokey.policyFile, 'utf8');
  const approvers = [];
  for (const identity of APPROVERS) {
    const pair = await generateIssuerKey('EdDSA', `${identity}-1`);
    await writeFile(keyFile(identity), JSON.stringify(pair.privateJwk), { mode: 0o600 });
    const jwksFile = join(plane.twokey.dir, `${identity}.jwks.json`);
    await writeFile(jwksFile, JSON.stringify(pair.jwks));
    approvers.push({ identity, jwksFile });
  }
  const policy = parse(original) as Record<string, Record<string, unknown> | undefined>;
  policy.approvals = { ...policy.approvals, countersign: true };
  policy.approvers = approvers as never;
  // The admin and the test users keep their names: only the OIDC prefix is mapped.
  policy.identities = { rules: [{ stripPrefix: 'oidc:' }], unmapped: 'asIs' };
  await writeFile(plane.twokey.policyFile, stringify(policy));
});

afterAll(async () => {
  await writeFile(plane.twokey.policyFile, original);
  // Back to the installed policy: a compact approval counts again.
  const ns = await namespace('restored');
  const file = await writeManifest('api', deployment({ namespace: ns }));
  const digest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', file])).stderr);
  const tokens = { bob: await approve({ approver: 'bob', digest, file }), carol: await approve({ approver: 'carol', digest, file }) };
  const approved = await writeManifest('api', deployment({ namespace: ns, annotations: approvalAnnotations(tokens) }));
  await eventually(
    'the installed policy in force again',
    async () => (await kubectl(['apply', '--dry-run=server', '-f', approved])).code === 0,
  );
});

describe('countersigned approvals on a real control plane', () => {
  let ns: string;
  let file: string;
  let digest: string;

  beforeAll(async () => {
    ns = await namespace('countersign');
    file = await writeManifest('api', deployment({ namespace: ns }));
    digest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', file])).stderr);
  });

  it("refuses two approvals the change system's key minted without their approvers' signatures", async () => {
    const tokens = {
      bob: await approve({ approver: 'bob@example.com', digest, file }),
      carol: await approve({ approver: 'carol@example.com', digest, file }),
    };
    const unsigned = await writeManifest('api-unsigned', deployment({ namespace: ns, annotations: approvalAnnotations(tokens) }));
    // The server picks the new policy up within its poll interval.
    const refused = await eventually('the countersign policy in force', async () => {
      const result = await kubectl(['apply', '-f', unsigned]);
      return result.stderr.includes('is a compact JWS') ? result : undefined;
    });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/denied the request: twokey: deploy of deployments.apps .*\/api refused: 0 of 2 required approvals/);
    expect(refused.stderr).toContain("approval.twokey.dev/bob: is a compact JWS, which carries only the change system's signature");
  });

  it('admits the same approvals countersigned by bob and carol, and refuses carol countersigning for bob', async () => {
    const bob = await approve({ approver: 'bob@example.com', digest, file });
    const carol = await approve({ approver: 'carol@example.com', digest, file });
    const forged = await writeManifest(
      'api-forged',
      deployment({
        namespace: ns,
        annotations: approvalAnnotations({
          bob: await countersign('carol@example.com', bob),
          carol: await countersign('carol@example.com', carol),
        }),
      }),
    );
    const refused = await kubectl(['apply', '-f', forged]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(
      'countersigned with key "carol@example.com-1" of "carol@example.com", not a key of the approver "bob@example.com"',
    );

    const signed = { bob: await countersign('bob@example.com', bob), carol: await countersign('carol@example.com', carol) };
    const approved = await writeManifest('api-countersigned', deployment({ namespace: ns, annotations: approvalAnnotations(signed) }));
    const applied = await kubectl(['apply', '-f', approved]);
    expect(applied.stderr).toBe('');
    expect(applied).toMatchObject({ code: 0, stdout: 'deployment.apps/api created\n' });
  });

  it('refuses a self-approval by a user the cluster names oidc:alice@example.com (impersonated, with the rights of system:masters)', async () => {
    const plain = await writeManifest('worker', deployment({ namespace: ns, name: 'worker' }));
    const workerDigest = digestIn((await kubectl(['apply', '--dry-run=server', '-f', plain])).stderr);
    const tokens = {
      alice: await countersign('alice@example.com', await approve({ approver: 'alice@example.com', digest: workerDigest, file: plain })),
      bob: await countersign('bob@example.com', await approve({ approver: 'bob@example.com', digest: workerDigest, file: plain })),
    };
    const worker = await writeManifest(
      'worker-approved',
      deployment({ namespace: ns, name: 'worker', annotations: approvalAnnotations(tokens) }),
    );
    const self = await kubectl(['--as=oidc:alice@example.com', '--as-group=system:masters', 'apply', '--dry-run=server', '-f', worker]);
    expect(self.code).toBe(1);
    expect(self.stderr).toContain('who are neither "alice@example.com" (from "oidc:alice@example.com") (making this request)');
    expect(self.stderr).toContain(
      'approver "alice@example.com" is the user making this request, "alice@example.com" (from "oidc:alice@example.com"), who cannot approve their own change',
    );
    // The same approvals, applied by someone else, count.
    const byAdmin = await kubectl(['apply', '--dry-run=server', '-f', worker]);
    expect(byAdmin.code, byAdmin.stderr).toBe(0);
  });
});
