/**
 * The package entry, as a change system imports it: package.json's `exports` names the compiled
 * entry, whose source is src/index.ts (tsconfig.build.json compiles src/ to dist/). Through it
 * alone: a plan of a release, one plan approval per approver, attached to the rendered manifests,
 * and each verified against each object's entry as the webhook would.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  exports: { '.': { types: string; default: string } };
};
const build = JSON.parse(readFileSync(new URL('../tsconfig.build.json', import.meta.url), 'utf8')) as {
  compilerOptions: { outDir: string; rootDir: string; declaration: boolean };
};

/** The source file the package entry is compiled from. */
function entrySource(): URL {
  const { outDir, rootDir } = build.compilerOptions;
  const compiled = pkg.exports['.'].default.replace(/^\.\//, '');
  expect(compiled.startsWith(`${outDir}/`)).toBe(true);
  return new URL(`../${rootDir}/${compiled.slice(outDir.length + 1).replace(/\.js$/, '.ts')}`, import.meta.url);
}

describe('the package entry', () => {
  it('is typed: exports names the compiled entry and its declarations', () => {
    expect(pkg.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(build.compilerOptions.declaration).toBe(true);
    expect(entrySource().pathname).toMatch(/\/src\/index\.ts$/);
  });

  it('plans, approves, attaches and verifies a release', async () => {
    const twokey = (await import(entrySource().href)) as typeof import('../src/index.ts');
    const { privateJwk, jwks } = await twokey.generateIssuerKey('EdDSA', 'change-1');
    const names = ['api', 'cart', 'ledger'];
    const objects = names.map((name) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'shop' },
      spec: { template: { spec: { containers: [{ name, image: `registry.example/${name}:1.0` }] } } },
    }));
    const entries = objects.map((object) => ({
      action: 'deploy' as const,
      resource: 'deployments.apps',
      namespace: 'shop',
      name: object.metadata.name,
      digest: twokey.digestOf({
        action: 'deploy',
        resource: 'deployments.apps',
        namespace: 'shop',
        name: object.metadata.name,
        spec: twokey.deploySpec(object),
      }),
    }));
    const plan = twokey.planDocument(entries, [], 'files');
    expect(plan.digest).toBe(twokey.planTree(entries).digest);

    const approval = (approver: string) =>
      twokey.mintPlanApproval({
        privateJwk,
        issuer: 'https://change.example.com',
        audience: 'prod-eu-1',
        approver,
        change: 'CHG-1',
        plan: plan.digest,
        entries: plan.entries.length,
        ttlSeconds: 600,
      });
    const tokens = [await approval('bob'), await approval('carol')];
    const text = objects.map((o) => JSON.stringify(o)).join('\n---\n');
    const attached = twokey.attachApprovals({
      text,
      source: 'release.yaml',
      plan,
      approvals: tokens.map((token, i) => ({ source: `approval-${i}`, token })),
    });
    const annotated = parseAllDocuments(attached).map((d) => d.toJS() as { metadata: { annotations: Record<string, string> } });

    for (const [i, entry] of entries.entries()) {
      const annotations = annotated[i]?.metadata.annotations ?? {};
      const verify = (changed: Partial<typeof entry> = {}) =>
        twokey.verifyApproval({
          token: annotations['approval.twokey.dev/bob'] as string,
          entry: { ...entry, ...changed },
          cluster: 'prod-eu-1',
          issuers: [{ issuer: 'https://change.example.com', jwks }],
          annotations,
        });
      expect(await verify()).toMatchObject({ ok: true, approval: { approver: 'bob', change: 'CHG-1', plan: plan.digest } });
      expect(await verify({ digest: `sha256:${'0'.repeat(64)}` })).toMatchObject({ ok: false, code: 'binding' });
    }

    // Countersigned by the approver's own key, the plan approval counts where approvals.countersign asks for it.
    const bob = await twokey.generateIssuerKey('EdDSA', 'bob-1');
    const countersigned = await twokey.countersign(tokens[0] as string, bob.privateJwk);
    expect(JSON.parse(countersigned)).toMatchObject({ payload: (tokens[0] as string).split('.')[1] });
    const annotations = annotated[0]?.metadata.annotations ?? {};
    const verifyCountersigned = (token: string) =>
      twokey.verifyApproval({
        token,
        entry: entries[0] as (typeof entries)[number],
        cluster: 'prod-eu-1',
        issuers: [{ issuer: 'https://change.example.com', jwks }],
        annotations,
        approvals: { countersign: true },
        approvers: [{ identity: 'bob', jwks: bob.jwks }],
      });
    expect(await verifyCountersigned(countersigned)).toMatchObject({ ok: true, approval: { approver: 'bob', plan: plan.digest } });
    expect(await verifyCountersigned(tokens[0] as string)).toMatchObject({ ok: false, code: 'countersignature' });
  });
});
