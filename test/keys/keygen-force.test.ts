/**
 * `twokey keygen --force` over an existing file: the private key is only ever written into a file
 * created private (0600, exclusively), never into the old file while it keeps its old mode (say 0644).
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it, vi } from 'vitest';
import { twokey } from '../support/cli.ts';

const writes = vi.hoisted(() => [] as Array<{ path: string; existed: boolean; flag: unknown; mode: unknown }>);

vi.mock('node:fs/promises', async (original) => {
  const fs = await original<typeof import('node:fs/promises')>();
  const { existsSync: exists } = await import('node:fs');
  return {
    ...fs,
    writeFile: (async (path: string, data: string, options?: { flag?: string; mode?: number }) => {
      writes.push({ path: String(path), existed: exists(path), flag: options?.flag, mode: options?.mode });
      return fs.writeFile(path, data, options);
    }) as typeof fs.writeFile,
  };
});

let dir = '';
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('never writes the private key into a file others can read, even with --force over an existing one', async () => {
  dir = await mkdtemp(join(tmpdir(), 'twokey-keygen-'));
  const key = join(dir, 'change.jwk.json');
  await writeFile(key, 'old\n', { mode: 0o644 });
  writes.length = 0;
  const result = await twokey([
    'keygen',
    '--issuer',
    'https://change.example.com',
    '--private-key',
    key,
    '--jwks',
    join(dir, 'jwks.json'),
    '--force',
  ]);
  expect(result.code, result.stderr).toBe(0);
  expect(writes.filter((w) => w.path === key)).toEqual([{ path: key, existed: false, flag: 'wx', mode: 0o600 }]);
  expect((await stat(key)).mode & 0o777).toBe(0o600);
  expect(existsSync(key) && readFileSync(key, 'utf8')).toContain('"d"');
});
