/**
 * On-call's side of break-glass with the `twokey` command: a break-glass key of its own, a token
 * minted with `twokey approve --break-glass`, and `twokey check` telling what the webhook would.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { twokey } from '../support/cli.ts';

let dir: string;
const path = (name: string) => join(dir, name);
const GLASS = 'https://break-glass.example.com';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'twokey-cli-glass-'));
  for (const [issuer, name] of [
    ['https://change.example.com', 'change'],
    [GLASS, 'glass'],
  ] as const) {
    const keygen = await twokey([
      'keygen',
      '--issuer',
      issuer,
      '--private-key',
      path(`${name}.jwk.json`),
      '--jwks',
      path(`${name}.jwks.json`),
    ]);
    expect(keygen.code, keygen.stderr).toBe(0);
  }
  await writeFile(
    path('policy.yaml'),
    `cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: change.jwks.json\ncritical:\n  namespaces: [payments]\nbreakGlass:\n  issuer: ${GLASS}\n  jwksFile: glass.jwks.json\n`,
  );
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mint = (key: string, extra: string[]) =>
  twokey([
    'approve',
    '--break-glass',
    '--key',
    path(key),
    '--issuer',
    GLASS,
    '--audience',
    'prod-eu-1',
    '--approver',
    'dave@example.com',
    ...extra,
  ]);

async function annotated(token: string, name = 'api-glass.json'): Promise<string> {
  const manifest = parse(await readFile('examples/deployment.yaml', 'utf8'));
  manifest.metadata.annotations = { 'twokey.dev/break-glass': token };
  await writeFile(path(name), JSON.stringify(manifest));
  return path(name);
}

const check = (file: string, user = 'alice') => twokey(['check', '--config', path('policy.yaml'), '-f', file, '--user', user]);

describe('twokey approve --break-glass', () => {
  it('mints a token twokey check admits with one approver, printing the warnings kubectl would', async () => {
    const minted = await mint('glass.jwk.json', ['--incident', 'INC-123', '-f', 'examples/deployment.yaml']);
    expect(minted.code, minted.stderr).toBe(0);
    const [header, payload] = minted.stdout.trim().split('.') as [string, string];
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toMatchObject({ typ: 'twokey-break-glass+jwt' });
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toMatchObject({
      iss: GLASS,
      sub: 'dave@example.com',
      twokeyBreakGlass: { version: 1, incident: 'INC-123', changes: [{ action: 'deploy', namespace: 'payments', name: 'api' }] },
    });
    const result = await check(await annotated(minted.stdout.trim()));
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toContain(
      'Warning: twokey: BREAK-GLASS: admitted without two approvals, for incident "INC-123" by "dave@example.com"',
    );
  });

  it('needs an incident, and takes no change id', async () => {
    const none = await mint('glass.jwk.json', ['-f', 'examples/deployment.yaml']);
    expect(none).toMatchObject({ code: 2 });
    expect(none.stderr).toContain('--break-glass needs --incident');
    const both = await mint('glass.jwk.json', ['--incident', 'INC-1', '--change', 'CHG1', '-f', 'examples/deployment.yaml']);
    expect(both.code).toBe(2);
    expect(
      (
        await twokey([
          'approve',
          '--incident',
          'INC-1',
          '--key',
          path('change.jwk.json'),
          '--issuer',
          'i',
          '--audience',
          'a',
          '--approver',
          'b',
          '--change',
          'c',
          '-f',
          'examples/deployment.yaml',
        ])
      ).code,
    ).toBe(2);
  });

  it('minted with the ordinary change system key, is refused by twokey check, saying why', async () => {
    const minted = await mint('change.jwk.json', ['--incident', 'INC-123', '-f', 'examples/deployment.yaml']);
    expect(minted.code).toBe(0);
    const result = await check(await annotated(minted.stdout.trim(), 'api-ordinary-key.json'));
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(
      /The break-glass token \(twokey.dev\/break-glass\) did not count: kid ".*" is not in the JWKS of "https:\/\/break-glass.example.com"/,
    );
  });

  it('is refused when the user making the change is its approver', async () => {
    const minted = await mint('glass.jwk.json', ['--incident', 'INC-123', '-f', 'examples/deployment.yaml']);
    const result = await check(await annotated(minted.stdout.trim(), 'api-self.json'), 'dave@example.com');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('its approver "dave@example.com" is the user making this request');
  });

  it('is refused by a policy whose break-glass issuer is also an ordinary issuer', async () => {
    await writeFile(
      path('shared.yaml'),
      `cluster: prod-eu-1\nissuers:\n  - issuer: ${GLASS}\n    jwksFile: glass.jwks.json\nbreakGlass:\n  issuer: ${GLASS}\n  jwksFile: glass.jwks.json\n`,
    );
    const result = await twokey(['check', '--config', path('shared.yaml'), '-f', 'examples/deployment.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('is also an ordinary issuer');
  });
});

describe('twokey approve --break-glass with the digests that count', () => {
  it('says that digests of a file as written may not be the server-side ones', async () => {
    const minted = await mint('glass.jwk.json', ['--incident', 'INC-7', '-f', 'examples/deployment.yaml']);
    expect(minted.code, minted.stderr).toBe(0);
    expect(minted.stderr).toContain('note: its digests are of the files as written');
    const exact = await mint('glass.jwk.json', [
      '--incident',
      'INC-7',
      '-f',
      'examples/deployment.yaml',
      '--digest',
      `sha256:${'0'.repeat(64)}`,
    ]);
    expect(exact.stderr).toBe('');
  });

  it('lets through exactly the entries of a plan with --plan', async () => {
    const plan = await twokey(['plan', '-f', 'examples/deployment.yaml', '-o', 'json']);
    expect(plan.code, plan.stderr).toBe(0);
    await writeFile(path('plan.json'), plan.stdout);
    const minted = await mint('glass.jwk.json', ['--incident', 'INC-8', '--plan', path('plan.json')]);
    expect(minted.code, minted.stderr).toBe(0);
    const [, payload] = minted.stdout.trim().split('.') as [string, string];
    const entries = (JSON.parse(plan.stdout) as { entries: unknown[] }).entries;
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString()).twokeyBreakGlass).toMatchObject({
      incident: 'INC-8',
      changes: entries,
    });
    const result = await check(await annotated(minted.stdout.trim(), 'api-plan-glass.json'));
    expect(result.code, result.stdout).toBe(0);
    expect(result.stdout).toContain('BREAK-GLASS');
  });
});
