/**
 * The CLI side of the rules beyond a count: approver keys (keygen --approver), countersigning
 * (countersign, with a key file or an external signer, of an approval or a plan approval), approve
 * through an external signer (of one object, with --plan, with --break-glass), and `twokey check`
 * judging identities, countersignatures and groups as the webhook does.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSigner } from '../../src/cli/signer.ts';
import { approveArgs as approveWith, twokey } from '../support/cli.ts';
import { approvalAnnotations } from '../support/world.ts';

const SIGNER = fileURLToPath(new URL('../fixtures/signer/signer.mjs', import.meta.url));
let dir: string;
const path = (name: string) => join(dir, name);

async function keygen(args: string[]) {
  const result = await twokey(['keygen', ...args]);
  expect(result.code, result.stderr).toBe(0);
  return result;
}

const approveArgs = (approver: string, key: string[] = ['--private-key', path('change.jwk.json')]) => approveWith(key, approver, 'CHG1');

async function minted(approver: string): Promise<string> {
  const result = await twokey(approveArgs(approver));
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

async function countersignedBy(name: string, token: string): Promise<string> {
  const result = await twokey(['countersign', '--key', path(`${name}.jwk.json`)], { input: token });
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

/** examples/deployment.yaml with approvals attached, written as JSON. */
async function annotated(name: string, tokens: Record<string, string>): Promise<string> {
  const { parseAllDocuments } = await import('yaml');
  const [doc] = parseAllDocuments(await readFile('examples/deployment.yaml', 'utf8'));
  const object = doc?.toJS() as { metadata: { annotations?: Record<string, string> } };
  object.metadata.annotations = approvalAnnotations(tokens);
  await writeFile(path(name), JSON.stringify(object));
  return path(name);
}

const check = (policy: string, file: string, user: string, json = false) =>
  twokey(['check', '--config', path(policy), '-f', file, '--user', user, ...(json ? ['-o', 'json'] : [])]);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'twokey-quorum-'));
  await keygen([
    '--issuer',
    'https://change.example.com',
    '--kid',
    'change-1',
    '--private-key',
    path('change.jwk.json'),
    '--jwks',
    path('jwks.json'),
  ]);
  for (const name of ['bob', 'carol', 'dave']) {
    await keygen([
      '--approver',
      `${name}@example.com`,
      '--kid',
      `${name}-1`,
      '--private-key',
      path(`${name}.jwk.json`),
      '--jwks',
      path(`${name}.jwks.json`),
    ]);
  }
  const base = `cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\n`;
  const registry = (groups: Record<string, string>) =>
    `approvers:\n${['bob', 'carol', 'dave'].map((n) => `  - identity: ${n}@example.com\n    jwksFile: ${n}.jwks.json\n    groups: [${groups[n] ?? ''}]\n`).join('')}`;
  await writeFile(
    path('identities.yaml'),
    `${base}identities:\n  rules:\n    - stripPrefix: "oidc:"\n    - exact: {"system:serviceaccount:ci:agent": "pipeline:deploy-bot"}\n`,
  );
  await writeFile(path('countersign.yaml'), `${base}approvals:\n  countersign: true\n${registry({})}`);
  await writeFile(
    path('groups.yaml'),
    `${base}approvals:\n  rules:\n    - namespaces: [payments]\n      required: 2\n      groups: [{group: sre, atLeast: 1}]\n${registry({ bob: 'sre', carol: 'dev', dave: 'dev' })}`,
  );
});

afterAll(async () => {
  delete process.env.TWOKEY_TEST_SIGNER_JWK;
  delete process.env.TWOKEY_TEST_SIGNER_MODE;
  await rm(dir, { recursive: true, force: true });
});

describe('keygen --approver', () => {
  it('writes an approver key and prints the registry entry', async () => {
    const result = await keygen([
      '--approver',
      'erin@example.com',
      '--private-key',
      path('erin.jwk.json'),
      '--jwks',
      path('erin.jwks.json'),
    ]);
    expect(result.stdout).toBe(`approvers:\n  - identity: "erin@example.com"\n    jwksFile: ${path('erin.jwks.json')}\n`);
    expect((await twokey(['keygen', '--private-key', path('x.json'), '--jwks', path('y.json')])).code).toBe(2);
    expect((await twokey(['keygen', '--approver', 'a b', '--private-key', path('x.json'), '--jwks', path('y.json')])).code).toBe(2);
  });
});

describe('twokey check with identities', () => {
  it('refuses a self-approval behind the OIDC prefix, and one under the name a service account is mapped to', async () => {
    const alice = await minted('alice@example.com');
    const bob = await minted('bob@example.com');
    const self = await check('identities.yaml', await annotated('self.json', { alice, bob }), 'oidc:alice@example.com');
    expect(self.code).toBe(1);
    expect(self.stdout).toContain(
      'approver "alice@example.com" is the user making this request, "alice@example.com" (from "oidc:alice@example.com")',
    );
    const bot = await check(
      'identities.yaml',
      await annotated('bot.json', { bot: await minted('pipeline:deploy-bot'), bob }),
      'system:serviceaccount:ci:agent',
    );
    expect(bot.code).toBe(1);
    const unmapped = await check('identities.yaml', await annotated('two.json', { bob, carol: await minted('carol@example.com') }), 'erin');
    expect(unmapped.code).toBe(1);
    expect(unmapped.stdout).toContain('the requesting user "erin" matches no identities rule');
  });
});

describe('countersigning', () => {
  it('admits two countersigned approvals, and refuses the same approvals without countersignatures', async () => {
    const bob = await minted('bob@example.com');
    const carol = await minted('carol@example.com');
    const plain = await check('countersign.yaml', await annotated('plain.json', { bob, carol }), 'alice');
    expect(plain.code).toBe(1);
    expect(plain.stdout).toContain('is a compact JWS');
    const signed = { bob: await countersignedBy('bob', bob), carol: await countersignedBy('carol', carol) };
    expect(JSON.parse(signed.bob)).toMatchObject({ payload: bob.split('.')[1], signatures: [{ protected: bob.split('.')[0] }, {}] });
    const admitted = await check('countersign.yaml', await annotated('signed.json', signed), 'alice');
    expect(admitted.code, admitted.stdout).toBe(0);
    const stolen = await check(
      'countersign.yaml',
      await annotated('stolen.json', { bob: signed.bob, carol: await countersignedBy('bob', carol) }),
      'alice',
      true,
    );
    expect(stolen.code).toBe(1);
    expect(JSON.parse(stolen.stdout)[0].approvals[1]).toMatchObject({ code: 'countersignature' });
  });

  it('refuses a policy whose registry names one key for two approvers, or an issuer key (exit 2)', async () => {
    await writeFile(
      path('shared.yaml'),
      `cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: jwks.json\napprovers:\n  - identity: bob@example.com\n    jwksFile: bob.jwks.json\n  - identity: mallory@example.com\n    jwksFile: bob.jwks.json\n`,
    );
    const shared = await check('shared.yaml', 'examples/deployment.yaml', 'alice');
    expect(shared.code).toBe(2);
    expect(shared.stderr).toContain('one key is registered for "bob@example.com"');
    await writeFile(
      path('issuer-key.yaml'),
      `cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: jwks.json\napprovers:\n  - identity: mallory@example.com\n    jwksFile: jwks.json\n`,
    );
    const issuerKey = await check('issuer-key.yaml', 'examples/deployment.yaml', 'alice');
    expect(issuerKey.code).toBe(2);
    expect(issuerKey.stderr).toContain('is also registered for approver "mallory@example.com"');
  });

  it('refuses input that is not a token, or one already countersigned', async () => {
    expect((await twokey(['countersign', '--private-key', path('bob.jwk.json')], { input: 'not a token' })).code).toBe(2);
    const twice = await countersignedBy('bob', await minted('bob@example.com'));
    const again = await twokey(['countersign', '--private-key', path('bob.jwk.json')], { input: twice });
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already carries 2 signatures');
  });
});

describe('an external signer', () => {
  const env = async (name: string, mode = 'base64url') => {
    process.env.TWOKEY_TEST_SIGNER_JWK = await readFile(path(`${name}.jwk.json`), 'utf8');
    process.env.TWOKEY_TEST_SIGNER_MODE = mode;
  };
  const publicKey = async (name: string) => {
    const file = path(`${name}.public.json`);
    await writeFile(
      file,
      JSON.stringify(JSON.parse(await readFile(path(name === 'change' ? 'jwks.json' : `${name}.jwks.json`), 'utf8')).keys[0]),
    );
    return file;
  };
  const signer = JSON.stringify([process.execPath, SIGNER]);

  it('mints and countersigns with a key held only by the signer, base64url or {signature} on stdout', async () => {
    await env('change');
    const token = await twokey(approveArgs('bob@example.com', ['--signer', signer, '--public-key', await publicKey('change')]));
    expect(token.code, token.stderr).toBe(0);
    await env('bob', 'json');
    const counter = await twokey(['countersign', '--signer', `${process.execPath} ${SIGNER}`, '--public-key', await publicKey('bob')], {
      input: token.stdout,
    });
    expect(counter.code, counter.stderr).toBe(0);
    const carol = await countersignedBy('carol', await minted('carol@example.com'));
    const admitted = await check('countersign.yaml', await annotated('external.json', { bob: counter.stdout.trim(), carol }), 'alice');
    expect(admitted.code, admitted.stdout).toBe(0);
  });

  it('prints nothing when the signer answers garbage, signs with another key, or fails', async () => {
    const token = await minted('bob@example.com');
    for (const [name, mode, error] of [
      ['bob', 'garbage', /does not verify with the public key "bob-1"/],
      ['carol', 'base64url', /does not verify with the public key "bob-1"/],
      ['bob', 'fail', /exited 3/],
    ] as const) {
      await env(name, mode);
      const result = await twokey(['countersign', '--signer', signer, '--public-key', await publicKey('bob')], { input: token });
      expect(result.code).toBe(2);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(error);
    }
    expect((await twokey(['countersign', '--signer', signer], { input: token })).stderr).toContain('--signer needs --public-key');
    expect((await twokey(['countersign', '--signer', '["x"', '--public-key', await publicKey('bob')], { input: token })).code).toBe(2);
  });

  it('mints a plan approval through the signer, which countersigned is counted on the object attached with its proof', async () => {
    const plan = await twokey(['plan', '-f', 'examples/deployment.yaml', '-o', 'json']);
    expect(plan.code, plan.stderr).toBe(0);
    await writeFile(path('plan.json'), plan.stdout);
    const planArgs = (approver: string, key: string[]) => [
      'approve',
      ...key,
      '--issuer',
      'https://change.example.com',
      '--audience',
      'prod-eu-1',
      '--approver',
      approver,
      '--change',
      'CHG1',
      '--plan',
      path('plan.json'),
    ];
    await env('change');
    const bob = await twokey(planArgs('bob@example.com', ['--signer', signer, '--public-key', await publicKey('change')]));
    expect(bob.code, bob.stderr).toBe(0);
    const [header, payload] = bob.stdout.trim().split('.') as [string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toMatchObject({ kid: 'change-1', typ: 'twokey-approval+jwt' });
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString()).twokey).toMatchObject({ v: 2, entries: 1 });
    const carol = await twokey(planArgs('carol@example.com', ['--private-key', path('change.jwk.json')]));
    expect(carol.code, carol.stderr).toBe(0);
    await mkdir(path('plan-approvals'));
    const attachPlan = () =>
      twokey(['attach', '--approvals', path('plan-approvals'), '--plan', path('plan.json'), '-f', 'examples/deployment.yaml']);
    await writeFile(path('plan-approvals/bob.json'), await countersignedBy('bob', bob.stdout.trim()));
    await writeFile(path('plan-approvals/carol.json'), await countersignedBy('carol', carol.stdout.trim()));
    const attached = await attachPlan();
    expect(attached.code, attached.stderr).toBe(0);
    await writeFile(path('plan-attached.yaml'), attached.stdout);
    const admitted = await check('countersign.yaml', path('plan-attached.yaml'), 'alice');
    expect(admitted.code, admitted.stdout).toBe(0);
    // The same plan approvals without their countersignatures do not count in countersign mode.
    await writeFile(path('plan-approvals/bob.json'), bob.stdout);
    await writeFile(path('plan-approvals/carol.json'), carol.stdout);
    const bare = await attachPlan();
    await writeFile(path('plan-bare.yaml'), bare.stdout);
    const refused = await check('countersign.yaml', path('plan-bare.yaml'), 'alice');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/is a compact JWS/);
  });

  it('mints a break-glass token through the signer, with the break-glass public key', async () => {
    const glass = 'https://break-glass.example.com';
    await keygen(['--issuer', glass, '--kid', 'glass-1', '--private-key', path('glass.jwk.json'), '--jwks', path('glass.jwks.json')]);
    await writeFile(
      path('glass.yaml'),
      `cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\nbreakGlass:\n  issuer: ${glass}\n  jwksFile: glass.jwks.json\n`,
    );
    await env('glass');
    const mintGlass = async () =>
      twokey([
        'approve',
        '--break-glass',
        '--incident',
        'INC-7',
        '--signer',
        signer,
        '--public-key',
        await publicKey('glass'),
        '--issuer',
        glass,
        '--audience',
        'prod-eu-1',
        '--approver',
        'dave@example.com',
        '-f',
        'examples/deployment.yaml',
      ]);
    const minted = await mintGlass();
    expect(minted.code, minted.stderr).toBe(0);
    const [header] = minted.stdout.trim().split('.') as [string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toMatchObject({ kid: 'glass-1', typ: 'twokey-break-glass+jwt' });
    const { parseAllDocuments } = await import('yaml');
    const [doc] = parseAllDocuments(await readFile('examples/deployment.yaml', 'utf8'));
    const object = doc?.toJS() as { metadata: { annotations?: Record<string, string> } };
    object.metadata.annotations = { 'twokey.dev/break-glass': minted.stdout.trim() };
    await writeFile(path('glass.json'), JSON.stringify(object));
    const admitted = await check('glass.yaml', path('glass.json'), 'alice');
    expect(admitted.code, admitted.stdout).toBe(0);
    expect(admitted.stdout).toContain('BREAK-GLASS');
    // A signer holding another key than the public key given prints nothing.
    await env('change');
    const wrong = await mintGlass();
    expect(wrong.code).toBe(2);
    expect(wrong.stdout).toBe('');
  });

  it('gives up on a signer that does not answer in time', async () => {
    process.env.TWOKEY_TEST_SIGNER_MODE = 'hang';
    await expect(runSigner([process.execPath, SIGNER], 'a.b', 300)).rejects.toThrow(/did not answer within 0.3 s/);
  });
});

describe('twokey check with approver groups', () => {
  it('refuses two approvals without the group the rule asks for, naming it, and admits with it', async () => {
    const carol = await minted('carol@example.com');
    const missing = await check('groups.yaml', await annotated('dev.json', { carol, dave: await minted('dave@example.com') }), 'alice');
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain('still missing: 1 more approval from group "sre" (0 of 1)');
    const admitted = await check('groups.yaml', await annotated('sre.json', { carol, bob: await minted('bob@example.com') }), 'alice');
    expect(admitted.code, admitted.stdout).toBe(0);
  });
});
