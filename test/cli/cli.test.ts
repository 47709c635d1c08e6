/**
 * The `twokey` command with real files, standard input and exit codes, run in this process as
 * bin/twokey.js runs it.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { mintApproval, parsePrivateJwk } from '../../src/keys/signing.ts';
import { approveArgs, twokey } from '../support/cli.ts';
import { bindingFor } from '../support/world.ts';

/** Sorted-key JSON: RFC 8785 for ASCII member names and integers, written independently of src. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value);
}
const sha = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

let dir: string;
const path = (name: string) => join(dir, name);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'twokey-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('help and usage', () => {
  it.each(['serve', 'keygen', 'digest', 'approve', 'countersign', 'check', 'demo'])('%s --help exits 0', async (command) => {
    const result = await twokey([command, '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: twokey ${command}`);
  });

  it('exits 2 on a malformed number', async () => {
    const result = await twokey(['serve', '--config', 'x.yaml', '--body-limit-mib', 'lots']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('expected a positive whole number');
  });

  it('exits 2 on unknown commands, unknown options and missing options, naming them', async () => {
    expect((await twokey(['launch'])).code).toBe(2);
    const unknown = await twokey(['digest', '-f', 'x', '--frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--frobnicate'");
    const missing = await twokey(['approve', '--issuer', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--audience <cluster>' not specified");
  });
});

describe('the change system flow: keygen, digest, approve, check', () => {
  beforeAll(async () => {
    const keygen = await twokey([
      'keygen',
      '--issuer',
      'https://change.example.com',
      '--kid',
      'k1',
      '--private-key',
      path('private.jwk.json'),
      '--jwks',
      path('jwks.json'),
    ]);
    expect(keygen.code, keygen.stderr).toBe(0);
    await writeFile(
      path('policy.yaml'),
      `cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\n`,
    );
  });

  it('keygen writes a private JWK only its owner can read, and a public JWKS', async () => {
    const privateJwk = JSON.parse(await readFile(path('private.jwk.json'), 'utf8'));
    const jwks = JSON.parse(await readFile(path('jwks.json'), 'utf8'));
    expect(privateJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', kid: 'k1', alg: 'EdDSA' });
    expect(privateJwk.d).toBeTypeOf('string');
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).not.toHaveProperty('d');
    expect((await stat(path('private.jwk.json'))).mode & 0o777).toBe(0o600);
  });

  it('keygen --force replaces a key and leaves it readable by its owner only', async () => {
    await writeFile(path('loose.jwk.json'), 'old', { mode: 0o644 });
    const result = await twokey([
      'keygen',
      '--issuer',
      'i',
      '--force',
      '--private-key',
      path('loose.jwk.json'),
      '--jwks',
      path('loose.jwks.json'),
    ]);
    expect(result.code).toBe(0);
    expect((await stat(path('loose.jwk.json'))).mode & 0o777).toBe(0o600);
  });

  it('keygen refuses to overwrite a key, and makes ES256 keys on request', async () => {
    const again = await twokey(['keygen', '--issuer', 'i', '--private-key', path('private.jwk.json'), '--jwks', path('other.json')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('exists; pass --force');
    const es = await twokey([
      'keygen',
      '--issuer',
      'i',
      '--alg',
      'ES256',
      '--private-key',
      path('es.jwk.json'),
      '--jwks',
      path('es.jwks.json'),
    ]);
    expect(es.code).toBe(0);
    expect(JSON.parse(await readFile(path('es.jwk.json'), 'utf8'))).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256' });
  });

  it('digest prints one line per object with the digest the README defines', async () => {
    const result = await twokey(['digest', '-f', 'examples/deployment.yaml']);
    expect(result.code).toBe(0);
    const manifest = parse(await readFile('examples/deployment.yaml', 'utf8'));
    const { replicas: _r, ...spec } = manifest.spec;
    const expected = sha(canonical({ action: 'deploy', resource: 'deployments.apps', namespace: 'payments', name: 'api', spec }));
    expect(result.stdout).toBe(`${expected}  deployments.apps payments/api\n`);
  });

  it('digest reads stdin, several documents, and the default namespace', async () => {
    const input =
      'apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec: {replicas: 1}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, uid: u-1}\n';
    const result = await twokey(['digest', '-f', '-', '-n', 'team-b'], { input });
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `${sha(canonical({ action: 'deploy', resource: 'statefulsets.apps', namespace: 'team-b', name: 'db', spec: {} }))}  statefulsets.apps team-b/db\n` +
        `${sha(canonical({ action: 'delete', resource: 'namespaces', namespace: '', name: 'team-a', uid: 'u-1' }))}  namespaces team-a\n`,
    );
    expect(result.stderr).toContain('skipped: ConfigMap c');
  });

  it('digest exits 2 naming the object when a delete digest has no uid to bind', async () => {
    const result = await twokey(['digest', '-f', 'examples/deployment.yaml', '--action', 'delete']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('deployments.apps payments/api has no metadata.uid');
  });

  it('digest and approve bind an unprotect to the file as it will be: its uid, critical label and owners', async () => {
    const next = parse(await readFile('examples/deployment.yaml', 'utf8'));
    next.metadata.uid = 'uid-api';
    next.metadata.ownerReferences = [
      { apiVersion: 'example.com/v1', kind: 'Database', name: 'ledger-db', uid: 'uid-ledger', controller: true },
      { apiVersion: 'example.com/v1', kind: 'Database', name: 'archive-db', uid: 'uid-archive' },
    ];
    await writeFile(path('handover.json'), JSON.stringify(next));
    const result = await twokey(['digest', '--action', 'unprotect', '-f', path('handover.json')]);
    expect(result.code, result.stderr).toBe(0);
    const expected = sha(
      canonical({
        action: 'unprotect',
        resource: 'deployments.apps',
        namespace: 'payments',
        name: 'api',
        uid: 'uid-api',
        critical: false,
        owners: [
          { apiVersion: 'example.com/v1', kind: 'Database', name: 'archive-db', uid: 'uid-archive' },
          { apiVersion: 'example.com/v1', kind: 'Database', name: 'ledger-db', uid: 'uid-ledger' },
        ],
      }),
    );
    expect(result.stdout).toBe(`${expected}  deployments.apps payments/api\n`);
    const token = await approve('bob@example.com', ['--action', 'unprotect', '-f', path('handover.json')]);
    expect(JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).twokey).toMatchObject({
      action: 'unprotect',
      digest: expected,
    });
    next.metadata.ownerReferences = [{ apiVersion: 'example.com/v1', kind: 'Database', name: 'ghost' }];
    await writeFile(path('broken-owner.json'), JSON.stringify(next));
    const broken = await twokey(['digest', '--action', 'unprotect', '-f', path('broken-owner.json')]);
    expect(broken.code).toBe(2);
    expect(broken.stderr).toContain('deployments.apps payments/api: metadata.ownerReferences[0].uid is missing');
  });

  it('digest exits 2 on a file that is not YAML, or missing', async () => {
    await writeFile(path('broken.yaml'), 'kind: [unclosed');
    expect((await twokey(['digest', '-f', path('broken.yaml')])).stderr).toContain('is not valid YAML');
    const missing = await twokey(['digest', '-f', path('nope.yaml')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
  });

  async function approve(approver: string, extra: string[] = []): Promise<string> {
    const result = await twokey([...approveArgs(['--private-key', path('private.jwk.json')], approver, 'CHG0031337'), ...extra]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    return result.stdout.trim();
  }

  async function annotated(tokens: Record<string, string>): Promise<string> {
    const manifest = parse(await readFile('examples/deployment.yaml', 'utf8'));
    manifest.metadata.annotations = Object.fromEntries(Object.entries(tokens).map(([k, v]) => [`approval.twokey.dev/${k}`, v]));
    const file = path(`api-${Object.keys(tokens).join('-') || 'none'}.json`);
    await writeFile(file, JSON.stringify(manifest));
    return file;
  }

  it('check refuses without approvals (exit 1) and prints the refusal as kubectl would', async () => {
    const result = await twokey(['check', '--config', path('policy.yaml'), '-f', 'examples/deployment.yaml', '--user', 'alice']);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /^Error from server \(Forbidden\): error when creating "examples\/deployment.yaml": admission webhook "workloads.twokey.dev" denied the request: twokey: deploy of deployments.apps payments\/api refused: 0 of 2/,
    );
  });

  it('check admits two approvals minted by twokey approve (exit 0), and refuses one', async () => {
    const bob = await approve('bob@example.com');
    const carol = await approve('carol@example.com');
    const admitted = await twokey(['check', '--config', path('policy.yaml'), '-f', await annotated({ bob, carol }), '--user', 'alice']);
    expect(admitted.code, admitted.stdout + admitted.stderr).toBe(0);
    expect(admitted.stdout).toContain('deployments.apps payments/api: admitted');
    const one = await twokey(['check', '--config', path('policy.yaml'), '-f', await annotated({ bob }), '--user', 'alice', '-o', 'json']);
    expect(one.code).toBe(1);
    expect(JSON.parse(one.stdout)[0]).toMatchObject({
      object: 'deployments.apps payments/api',
      allowed: false,
      action: 'deploy',
      approvers: ['bob@example.com'],
    });
  });

  it('check refuses a self-approval, and judges an UPDATE against --old', async () => {
    const alice = await approve('alice');
    const bob = await approve('bob@example.com');
    const self = await twokey(['check', '--config', path('policy.yaml'), '-f', await annotated({ alice, bob }), '--user', 'alice']);
    expect(self.code).toBe(1);
    expect(self.stdout).toContain('approval.twokey.dev/alice: approver "alice" is the user making this request');
    const metadataOnly = await twokey([
      'check',
      '--config',
      path('policy.yaml'),
      '-f',
      await annotated({ bob }),
      '--old',
      'examples/deployment.yaml',
      '--user',
      'alice',
    ]);
    expect(metadataOnly.code).toBe(0);
  });

  it('check refuses a spec change hidden in an owner handover until each aspect has its approvals, as the webhook does', async () => {
    const live = parse(await readFile('examples/deployment.yaml', 'utf8'));
    live.metadata.uid = 'uid-api';
    const next = structuredClone(live);
    next.spec.template.spec.containers[0].image = 'registry.example.com/payments/api:6.6.6';
    next.metadata.ownerReferences = [{ apiVersion: 'example.com/v1', kind: 'Database', name: 'ghost', uid: 'uid-ghost' }];
    await writeFile(path('live.json'), JSON.stringify(live));
    await writeFile(path('next.json'), JSON.stringify(next));
    // Minted in process with the change system's key, bound to the file's digests as twokey approve binds them.
    const privateJwk = parsePrivateJwk(JSON.parse(await readFile(path('private.jwk.json'), 'utf8')), 'private.jwk.json');
    const mint = (approver: string, action: 'deploy' | 'unprotect') =>
      mintApproval({
        privateJwk,
        issuer: 'https://change.example.com',
        audience: 'prod-eu-1',
        approver: `${approver}@example.com`,
        change: 'CHG0031337',
        binding: bindingFor(action, next),
        ttlSeconds: 600,
      });
    const tokens: Record<string, string> = {
      'bob-unprotect': await mint('bob', 'unprotect'),
      'carol-unprotect': await mint('carol', 'unprotect'),
    };
    const withTokens = async (name: string) => {
      const annotated = structuredClone(next);
      annotated.metadata.annotations = Object.fromEntries(Object.entries(tokens).map(([k, v]) => [`approval.twokey.dev/${k}`, v]));
      await writeFile(path(name), JSON.stringify(annotated));
      return ['check', '--config', path('policy.yaml'), '-f', path(name), '--old', path('live.json'), '--user', 'alice'];
    };
    const refused = await twokey(await withTokens('next-unprotect.json'));
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('twokey: deploy+unprotect of deployments.apps payments/api refused');
    expect(refused.stdout).toMatch(/The deploy needs approvals bound to digest sha256:[0-9a-f]{64}: 0 of 2 required approvals\./);
    tokens['bob-deploy'] = await mint('bob', 'deploy');
    tokens['carol-deploy'] = await mint('carol', 'deploy');
    const admitted = await twokey(await withTokens('next-both.json'));
    expect(admitted.code, admitted.stdout).toBe(0);
    expect(admitted.stdout).toContain(
      'deployments.apps payments/api: admitted (admitted: deploy+unprotect of deployments.apps payments/api: ',
    );
  });

  it('check warns of a critical label that only looks like "true", as the webhook does', async () => {
    const manifest = parse(await readFile('examples/deployment.yaml', 'utf8'));
    manifest.metadata.namespace = 'team-a';
    manifest.metadata.labels['twokey.dev/critical'] = 'True';
    await writeFile(path('look-alike.json'), JSON.stringify(manifest));
    const result = await twokey(['check', '--config', path('policy.yaml'), '-f', path('look-alike.json'), '--user', 'alice']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(
      'Warning: twokey: label twokey.dev/critical is "True", not "true": it does not make this Deployment critical\n',
    );
  });

  it('approve --digest binds the digest from a refusal', async () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    const token = await approve('bob@example.com', ['--digest', digest, '--ttl', '15m']);
    const payload = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString());
    expect(payload.twokey).toMatchObject({
      digest,
      action: 'deploy',
      resource: 'deployments.apps',
      namespace: 'payments',
      name: 'api',
      change: 'CHG0031337',
    });
    expect(payload.exp - payload.iat).toBe(900);
    const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString());
    expect(header).toEqual({ alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'k1' });
  });

  it('approve exits 2 on a malformed digest or approver', async () => {
    const base = [
      'approve',
      '--private-key',
      path('private.jwk.json'),
      '--issuer',
      'i',
      '--audience',
      'a',
      '--change',
      'c',
      '-f',
      'examples/deployment.yaml',
    ];
    const digest = await twokey([...base, '--approver', 'bob', '--digest', 'sha256:XYZ']);
    expect(digest.code).toBe(2);
    expect(digest.stderr).toContain('expected sha256: followed by 64 lowercase hex digits');
    const approver = await twokey([...base, '--approver', 'bob smith']);
    expect(approver.code).toBe(2);
    expect(approver.stderr).toContain('--approver "bob smith" is not a valid identity');
    // No webhook ever gates a deploy of a Namespace: such a token could never count.
    const namespace = await twokey([...base.slice(0, -1), 'examples/namespace.yaml', '--approver', 'bob', '--action', 'deploy']);
    expect(namespace.code).toBe(2);
    expect(namespace.stderr).toContain('a namespace is not deployed');
  });

  it('check exits 2 on an invalid policy, naming the field', async () => {
    await writeFile(path('bad-policy.yaml'), 'cluster: x\nissuers: [{issuer: a, jwksFile: jwks.json}]\napprovals: {required: 1}\n');
    const result = await twokey(['check', '--config', path('bad-policy.yaml'), '-f', 'examples/deployment.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('approvals.required: must be >= 2');
  });
});

describe('demo', () => {
  it('walks through the story and exits 0', async () => {
    const result = await twokey(['demo']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('refused: 0 of 2 required approvals');
    expect(result.stdout).toContain('refused: 1 of 2 required approvals');
    expect(result.stdout).toContain('is the user making this request');
    expect(result.stdout).toContain('deployment.apps/api created');
    expect(result.stdout).toContain('namespace "payments" deleted');
    expect(result.stdout).toContain('Every step got the verdict the two-person rule calls for.');
  });
});
