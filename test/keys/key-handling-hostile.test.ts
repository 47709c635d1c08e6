/**
 * Key handling against hostile input and mistakes: a rotation refused while the policy forbade it,
 * taking effect once the policy allows it; RSA keys with which anyone forges; a private key pasted
 * into the chart's values; a key file whose parse error would quote the key; and countersigning
 * claims the approver was not shown.
 */
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigStore } from '../../src/config/store.ts';
import { evaluateApproval } from '../../src/decision/approval.ts';
import { importJwks, KeyRing } from '../../src/keys/jwks.ts';
import { render } from '../support/chart.ts';
import { twokey } from '../support/cli.ts';
import { eventually, policyYaml, serverFiles } from '../support/files.ts';
import { approve, bindingFor, deployment, makeApprover, makeIssuer, makePolicy, NOW } from '../support/world.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('a JWKS file whose rotation was refused', () => {
  it('takes effect, withdrawing the revoked key, once the conflict that blocked it is fixed and the policy reloads', async () => {
    const issuer = await makeIssuer('https://change.example.com', 'EdDSA', 'k1');
    const next = await makeIssuer('https://change.example.com', 'EdDSA', 'k2');
    const dave = await makeApprover('dave@example.com', 'dave-1');
    const files = await serverFiles(issuer);
    // By mistake, dave's registry entry holds the change system's next key (not yet published).
    await writeFile(`${files.dir}/dave.json`, JSON.stringify({ keys: next.jwks.keys.map((k) => ({ ...k, kid: 'dave-1' })) }));
    await files.writePolicy(policyYaml(issuer.issuer, 'approvers:\n  - identity: dave@example.com\n    jwksFile: dave.json\n'));
    const events: string[] = [];
    const store = new ConfigStore({
      policyPath: files.policy,
      pollIntervalMs: 20,
      observer: { reloaded: (kind) => events.push(`${kind}:ok`), failed: (kind) => events.push(`${kind}:error`) },
    });
    await store.start();
    cleanups.push(
      () => files.cleanup(),
      () => store.stop(),
    );
    expect(store.current()?.keys.find(issuer.issuer, 'k1')).toBeDefined();

    // k1 is compromised: the issuer publishes a JWKS without it. Refused (k2 is registered for dave): last good kept.
    await writeFile(files.jwks, JSON.stringify(next.jwks));
    await eventually(() => events.includes('jwks:error'));
    expect(store.current()?.keys.find(issuer.issuer, 'k1')).toBeDefined();

    // The operator fixes dave's entry; the policy reloads as a whole, and an explicit reload follows.
    await writeFile(`${files.dir}/dave.json`, JSON.stringify(dave.jwks));
    await eventually(() => events.includes('policy:ok'));
    await store.reloadNow();

    // The JWKS file on disk now withdraws k1 and is valid with the policy in force: k1 must stop counting.
    await eventually(() => store.current()?.keys.find(issuer.issuer, 'k1') === undefined, 2000).catch(() => {});
    expect(store.current()?.keys.find(issuer.issuer, 'k1'), 'the revoked key k1 is still trusted').toBeUndefined();
    expect(store.current()?.keys.find(issuer.issuer, 'k2')).toBeDefined();
  });
});

describe('RSA keys', () => {
  it('are not trusted with a public exponent of 1, with which anyone forges approvals', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const weak = { ...publicKey.export({ format: 'jwk' }), e: 'AQ', kid: 'weak', alg: 'RS256', use: 'sig' };
    const set = await importJwks('https://change.example.com', { keys: [weak] }, 'test');
    const policy = makePolicy({ approvals: { algorithms: ['RS256'] } });

    // A forged approval: no private key, the "signature" is the PKCS#1 v1.5 encoding itself (s^1 = s).
    const api = deployment();
    const honest = await approve(await makeIssuer(), 'deploy', api, { approver: 'bob@example.com' });
    const header = Buffer.from(JSON.stringify({ alg: 'RS256', typ: 'twokey-approval+jwt', kid: 'weak' })).toString('base64url');
    const payload = honest.split('.')[1] as string;
    const digest = createHash('sha256').update(`${header}.${payload}`).digest();
    const t = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), digest]);
    const em = Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(256 - t.length - 3, 0xff), Buffer.from([0]), t]);
    const forged = `${header}.${payload}.${em.toString('base64url')}`;
    const outcome = await evaluateApproval(forged, bindingFor('deploy', api), { policy, keys: new KeyRing([set]), now: NOW });

    expect(outcome.ok, 'a forged approval counts with an e=1 key').toBe(false);
    expect(set.keys.has('weak'), 'the e=1 key is trusted').toBe(false);
  });
});

describe('RSA keys of other sizes and exponents', () => {
  it('are left out, with the reason, when the exponent is even or under 65537 or the modulus under 2048 bits', async () => {
    const rsa = (modulusLength: number) => generateKeyPairSync('rsa', { modulusLength }).publicKey.export({ format: 'jwk' });
    const set = await importJwks(
      'https://change.example.com',
      {
        keys: [
          { ...rsa(2048), kid: 'ok' },
          { ...rsa(2048), e: 'Aw', kid: 'three' },
          { ...rsa(2048), e: 'AQAC', kid: 'even' },
          { ...rsa(1024), kid: 'short' },
        ],
      },
      'test',
    );
    expect([...set.keys.keys()]).toEqual(['ok']);
    expect(set.skipped).toEqual([
      'key "three": its RSA public exponent 3 is not an odd number of at least 65537',
      'key "even": its RSA public exponent 65538 is not an odd number of at least 65537',
      'key "short": its RSA modulus has 1024 bits, fewer than 2048',
    ]);
  });
});

describe('the chart', () => {
  it('refuses to render an issuer or break-glass JWKS given in values that holds private key material', async () => {
    const issuer = await makeIssuer('https://change.example.com', 'EdDSA', 'k1');
    const glass = await makeIssuer('https://break-glass.example.com', 'EdDSA', 'g1');
    const dir = await mkdtemp(join(tmpdir(), 'twokey-chart-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const write = async (name: string, values: unknown) => {
      await writeFile(join(dir, name), JSON.stringify(values));
      return join(dir, name);
    };
    const issuers = await write('issuers.json', { issuers: [{ issuer: issuer.issuer, jwks: { keys: [issuer.privateJwk] } }] });
    expect(() => render({ valuesFile: issuers })).toThrow(/issuers\[0\]\.jwks\.keys\[0\] holds private or secret key material \(d\)/);
    const breakGlass = await write('glass.json', { breakGlass: { issuer: glass.issuer, jwks: { keys: [glass.privateJwk] } } });
    expect(() => render({ valuesFile: breakGlass })).toThrow(/breakGlass\.jwks\.keys\[0\] holds private or secret key material \(d\)/);
  });

  it('refuses to render an approver registry entry that holds private key material', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twokey-attack-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const bob = await makeApprover('bob@example.com', 'bob-1');
    // The approver pastes the file keygen wrote as --private-key instead of the JWKS.
    const values = {
      policy: { approvals: { countersign: true }, approvers: [{ identity: 'bob@example.com', jwks: { keys: [bob.privateJwk] } }] },
    };
    await writeFile(join(dir, 'values.json'), JSON.stringify(values));
    let rendered: string | undefined;
    try {
      rendered = JSON.stringify(render({ valuesFile: join(dir, 'values.json') }));
    } catch {
      rendered = undefined; // refused at render: what should happen
    }
    expect(rendered?.includes(bob.privateJwk.d as string) ?? false, "bob's private key d is in a rendered ConfigMap").toBe(false);
  });
});

describe('a private JWK that is not JSON', () => {
  it('does not print any of the private scalar when the key file is not JSON', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twokey-attack-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const key = (await makeIssuer()).privateJwk;
    const d = key.d as string;
    // One hand-edited file: the d value lost its quotes.
    await writeFile(join(dir, 'change.jwk.json'), `{"kty":"OKP","crv":"Ed25519","kid":"${key.kid}","alg":"EdDSA","d":${d},"x":"${key.x}"}`);
    const result = await twokey([
      'approve',
      '--private-key',
      join(dir, 'change.jwk.json'),
      '--issuer',
      'https://change.example.com',
      '--audience',
      'prod-eu-1',
      '--approver',
      'bob@example.com',
      '--change',
      'CHG1',
      '-f',
      'examples/deployment.yaml',
    ]);
    expect(result.code).toBe(2);
    const leaked = [...Array(d.length - 5).keys()].map((i) => d.slice(i, i + 6)).filter((piece) => result.stderr.includes(piece));
    expect(leaked, `stderr: ${result.stderr}`).toEqual([]);
  });
});

describe('twokey countersign', () => {
  it('tells the approver what they are countersigning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'twokey-attack-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const bob = await makeApprover('bob@example.com', 'bob-1');
    await writeFile(join(dir, 'bob.jwk.json'), JSON.stringify(bob.privateJwk));
    // Bob expects CHG-SAFE for payments/api; a compromised change system hands him a token of another change.
    const swapped = await approve(await makeIssuer(), 'delete', deployment({ name: 'ledger', namespace: 'payments' }), {
      approver: 'bob@example.com',
      change: 'CHG-EVIL',
    });
    const result = await twokey(['countersign', '--key', join(dir, 'bob.jwk.json')], { input: swapped });
    expect(result.code).toBe(0);
    // The countersigned token went out; nothing told bob it approves deleting payments/ledger under CHG-EVIL.
    expect(result.stderr, 'countersign printed nothing about the claims it signed').toMatch(/CHG-EVIL/);
    expect(result.stderr).toMatch(/delete/);
    expect(result.stderr).toMatch(/ledger/);
  });
});
