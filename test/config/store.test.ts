/**
 * Policy and keys stay current without a restart, and a bad new version never replaces a good one.
 */
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type ConfigObserver, ConfigStore } from '../../src/config/store.ts';
import { decide } from '../../src/decision/decide.ts';
import type { Identity } from '../../src/identity.ts';
import { eventually, policyYaml, type ServerFiles, serverFiles } from '../support/files.ts';
import {
  approve,
  countersigned,
  deployment,
  type Issuer,
  makeApprover,
  makeIssuer,
  offlineContext,
  request,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let rotated: Issuer;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(async () => {
  issuer = await makeIssuer('https://change.example.com', 'EdDSA', 'k1');
  rotated = await makeIssuer('https://change.example.com', 'ES256', 'k2');
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function recorder() {
  const events: string[] = [];
  const observer: ConfigObserver = {
    reloaded: (kind) => events.push(`${kind}:ok`),
    failed: (kind, _source, error) => events.push(`${kind}:error:${(error as Error).message}`),
  };
  return { events, observer };
}

async function storeWithFiles(): Promise<{ store: ConfigStore; files: ServerFiles; events: string[] }> {
  const files = await serverFiles(issuer);
  const { events, observer } = recorder();
  const store = new ConfigStore({ policyPath: files.policy, observer, pollIntervalMs: 20 });
  await store.start();
  cleanups.push(
    () => files.cleanup(),
    () => store.stop(),
  );
  return { store, files, events };
}

describe('files', () => {
  it('loads policy and keys, and is ready', async () => {
    const { store } = await storeWithFiles();
    expect(store.notReady()).toEqual([]);
    expect(store.current()?.keys.find(issuer.issuer, 'k1')).toBeDefined();
  });

  it('reloads a changed policy', async () => {
    const { store, files, events } = await storeWithFiles();
    await files.writePolicy(policyYaml(issuer.issuer, 'approvals:\n  required: 3\n'));
    await eventually(() => store.current()?.policy.required === 3);
    expect(events).toContain('policy:ok');
  });

  it('keeps the last good policy when the new one is invalid, and says why', async () => {
    const { store, files, events } = await storeWithFiles();
    await files.writePolicy(policyYaml(issuer.issuer, 'approvals:\n  required: 1\n'));
    await eventually(() => events.length > 0);
    expect(events[0]).toMatch(/^policy:error:.*approvals.required: must be >= 2/);
    expect(store.current()?.policy.required).toBe(2);
  });

  it('refuses a new policy whose JWKS file is broken, as a whole', async () => {
    const { store, files, events } = await storeWithFiles();
    await writeFile(`${files.dir}/other.json`, '{"keys": "nope"}');
    await files.writePolicy(
      policyYaml(issuer.issuer, 'approvals:\n  required: 3\n').replace('jwksFile: jwks.json', 'jwksFile: other.json'),
    );
    await eventually(() => events.length > 0);
    expect(events[0]).toMatch(/^policy:error:.*not a JWKS/);
    expect(store.current()?.policy.required).toBe(2);
  });

  it('reloads a rotated JWKS file', async () => {
    const { store, files, events } = await storeWithFiles();
    await writeFile(files.jwks, JSON.stringify({ keys: [...issuer.jwks.keys, ...rotated.jwks.keys] }));
    await eventually(() => store.current()?.keys.find(issuer.issuer, 'k2') !== undefined);
    expect(events).toContain('jwks:ok');
  });

  it.each([
    ['not JSON', '{'],
    ['private key material', () => JSON.stringify({ keys: [issuer.privateJwk] })],
    ['a secret key', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] })],
    ['a key named twice', () => JSON.stringify({ keys: [...issuer.jwks.keys, ...issuer.jwks.keys] })],
  ])('keeps the last good JWKS when the new one holds %s', async (_name, content) => {
    const { store, files, events } = await storeWithFiles();
    await writeFile(files.jwks, typeof content === 'function' ? content() : content);
    await eventually(() => events.length > 0);
    expect(events[0]).toMatch(/^jwks:error:/);
    expect(store.current()?.keys.find(issuer.issuer, 'k1')).toBeDefined();
  });

  it.each([
    ['no keys', JSON.stringify({ keys: [] })],
    ['only keys twokey cannot use', JSON.stringify({ keys: [{ kty: 'OKP', crv: 'X25519', x: 'AAAA', kid: 'k1' }] })],
  ])('withdraws every key of an issuer whose JWKS now holds %s (revocation)', async (_name, content) => {
    const { store, files, events } = await storeWithFiles();
    await writeFile(files.jwks, content);
    await eventually(() => store.current()?.keys.find(issuer.issuer, 'k1') === undefined);
    expect(events).toContain('jwks:ok');
    expect(store.current()?.keys.keyCount(issuer.issuer)).toBe(0);
    expect(store.notReady()).toEqual([]);
  });

  it('refuses to start on an invalid policy', async () => {
    const files = await serverFiles(issuer);
    cleanups.push(() => files.cleanup());
    await files.writePolicy('cluster: x\n');
    await expect(new ConfigStore({ policyPath: files.policy }).start()).rejects.toThrow(/issuers/);
  });
});

describe('JWKS URLs', () => {
  let server: Server;
  let answer: () => [number, string];
  let fetches = 0;

  beforeAll(async () => {
    server = createServer((_req, res) => {
      fetches += 1;
      const [status, body] = answer();
      // Written in two parts: chunked, without a content-length.
      res.writeHead(status, { 'content-type': 'application/json' }).write(body.slice(0, body.length >> 1));
      res.end(body.slice(body.length >> 1));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return () => new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function urlStore(first: () => [number, string]) {
    answer = first;
    fetches = 0;
    const files = await serverFiles(issuer);
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    await files.writePolicy(
      `cluster: prod-eu-1\nissuers:\n  - issuer: ${issuer.issuer}\n    jwksUrl: "${url}"\n    refreshInterval: 10s\n`,
    );
    const { events, observer } = recorder();
    const store = new ConfigStore({ policyPath: files.policy, observer, pollIntervalMs: 50, minRefetchMs: 100 });
    await store.start();
    cleanups.push(
      () => files.cleanup(),
      () => store.stop(),
    );
    return { store, events };
  }

  it('fetches the key set at start and is ready', async () => {
    const { store } = await urlStore(() => [200, JSON.stringify(issuer.jwks)]);
    expect(store.notReady()).toEqual([]);
    expect(fetches).toBe(1);
  });

  it('is not ready while no key set was ever loaded, and says which', async () => {
    const { store, events } = await urlStore(() => [503, 'down']);
    expect(store.notReady()[0]).toMatch(
      /^no JWKS loaded yet for issuer https:\/\/change.example.com \(http:\/\/127.0.0.1:\d+\/jwks.json\)/,
    );
    expect(events[0]).toMatch(/answered HTTP 503/);
  });

  it('keeps the last good set when a refresh fails, and picks up a rotation on request', async () => {
    const { store, events } = await urlStore(() => [200, JSON.stringify(issuer.jwks)]);
    answer = () => [500, 'oops'];
    await new Promise((resolve) => setTimeout(resolve, 150));
    store.requestRefresh(issuer.issuer);
    await eventually(() => events.some((e) => e.startsWith('jwks:error')));
    expect(store.notReady()).toEqual([]);
    expect(store.current()?.keys.find(issuer.issuer, 'k1')).toBeDefined();

    answer = () => [200, JSON.stringify(rotated.jwks)];
    await new Promise((resolve) => setTimeout(resolve, 150));
    store.requestRefresh(issuer.issuer);
    await eventually(() => store.current()?.keys.find(issuer.issuer, 'k2') !== undefined);
  });

  it('keeps the key ring (and the tokens it verified) when a refresh brings the same keys', async () => {
    const { store } = await urlStore(() => [200, JSON.stringify(issuer.jwks)]);
    const ring = store.current()?.keys;
    await new Promise((resolve) => setTimeout(resolve, 150));
    store.requestRefresh(issuer.issuer);
    await eventually(() => fetches === 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(store.current()?.keys).toBe(ring);
  });

  it('refuses a JWKS larger than 1 MiB even without a content-length', async () => {
    const { store, events } = await urlStore(() => [200, JSON.stringify({ keys: [{ kty: 'oct', pad: 'x'.repeat(2 * 1024 * 1024) }] })]);
    expect(store.notReady()).not.toEqual([]);
    expect(events[0]).toMatch(/larger than 1048576 bytes/);
  });

  it('limits refetches on request to one per interval', async () => {
    const { store } = await urlStore(() => [200, JSON.stringify(issuer.jwks)]);
    for (let i = 0; i < 20; i++) store.requestRefresh(issuer.issuer);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(fetches).toBeLessThanOrEqual(2);
  });
});

describe('key rotation with overlapping keys, and the approvers registry', () => {
  const registry =
    'approvals:\n  countersign: true\napprovers:\n  - identity: bob@example.com\n    jwksFile: bob.json\n  - identity: carol@example.com\n    jwksFile: carol.json\n';

  async function rotationWorld() {
    const { store, files, events } = await storeWithFiles();
    const [bobOld, bobNew, carol] = await Promise.all([
      makeApprover('bob@example.com', 'bob-1'),
      makeApprover('bob@example.com', 'bob-2'),
      makeApprover('carol@example.com'),
    ]);
    await writeFile(`${files.dir}/bob.json`, JSON.stringify({ keys: [...bobOld.jwks.keys, ...bobNew.jwks.keys] }));
    await writeFile(`${files.dir}/carol.json`, JSON.stringify(carol.jwks));
    await writeFile(files.jwks, JSON.stringify({ keys: [...issuer.jwks.keys, ...rotated.jwks.keys] }));
    await files.writePolicy(policyYaml(issuer.issuer, registry));
    await store.reloadNow();
    await eventually(() => store.current()?.policy.countersign === true && store.current()?.keys.find(issuer.issuer, 'k2') !== undefined);
    const judge = async (annotations: Record<string, string>) => {
      const snapshot = store.current();
      if (!snapshot) throw new Error('no snapshot');
      return decide(request({ operation: 'CREATE', object: withAnnotations(deployment(), annotations) }), offlineContext(snapshot));
    };
    return { store, files, events, bobOld, bobNew, carol, judge };
  }

  it('accepts tokens of the old issuer key and the old approver key while both are listed, and refuses them once removed', async () => {
    const { store, files, bobOld, carol, judge } = await rotationWorld();
    const api = deployment();
    const oldIssuer = { ...issuer, issuer: issuer.issuer };
    const bob = await countersigned(bobOld, await approve(oldIssuer, 'deploy', api, { approver: 'bob@example.com' }));
    const carols = await countersigned(carol, await approve(rotated, 'deploy', api, { approver: 'carol@example.com' }));
    const annotations = { 'approval.twokey.dev/bob': bob, 'approval.twokey.dev/carol': carols };
    expect((await judge(annotations)).allowed).toBe(true);

    // The approver's old key leaves the registry: the policy is loaded again with it.
    await writeFile(`${files.dir}/bob.json`, JSON.stringify({ keys: (await makeApprover('bob@example.com', 'bob-2')).jwks.keys }));
    await eventually(async () => (await judge(annotations)).allowed === false);
    expect((await judge(annotations)).approvals[0]).toMatchObject({ code: 'countersignature' });

    // The issuer's old key leaves its JWKS.
    await writeFile(`${files.dir}/bob.json`, JSON.stringify(bobOld.jwks));
    await eventually(async () => (await judge(annotations)).allowed === true);
    await writeFile(files.jwks, JSON.stringify(rotated.jwks));
    await eventually(() => store.current()?.keys.find(issuer.issuer, 'k1') === undefined);
    expect((await judge(annotations)).approvals[0]).toMatchObject({ code: 'kid' });
  });

  it('keeps the last good policy when the registry names one key for two approvers, or an issuer key', async () => {
    const { store, files, events, bobOld, carol } = await rotationWorld();
    // What is in force, judged by what it holds (a reload of the same files may make new objects).
    const carolsKeyInForce = () =>
      store.current()?.keys.approvers?.find('carol@example.com' as Identity, 'carol@example.com-1')?.thumbprint;
    const original = carolsKeyInForce();
    expect(original).toBeDefined();
    await writeFile(`${files.dir}/carol.json`, JSON.stringify(bobOld.jwks));
    await eventually(() => events.some((e) => /one key is registered for "bob@example.com"/.test(e)));
    expect(store.current()?.keys.approvers?.find('carol@example.com' as Identity, 'bob-1')).toBeUndefined();
    expect(carolsKeyInForce()).toBe(original);
    await writeFile(`${files.dir}/carol.json`, JSON.stringify(issuer.jwks));
    await eventually(() => events.some((e) => /is also registered for approver "carol@example.com"/.test(e)));
    expect(carolsKeyInForce()).toBe(original);
    // A change system's JWKS that takes an approver's key is refused too; the last good set stays.
    await writeFile(`${files.dir}/carol.json`, JSON.stringify(carol.jwks));
    await writeFile(files.jwks, JSON.stringify({ keys: [...issuer.jwks.keys, ...bobOld.jwks.keys] }));
    await eventually(() => events.some((e) => e.startsWith('jwks:error') && /also registered for approver "bob@example.com"/.test(e)));
    expect(store.current()?.keys.find(issuer.issuer, 'bob-1')).toBeUndefined();
    expect(store.current()?.keys.find(issuer.issuer, 'k2')).toBeDefined();
  });
});

describe('the break-glass issuer', () => {
  const breakGlassYaml = (jwksFile: string, issuerName = 'https://break-glass.example.com') =>
    `breakGlass:\n  issuer: ${issuerName}\n  jwksFile: ${jwksFile}\n  maxTtl: 30m\n`;

  it('loads its keys apart from the ordinary issuers, and is ready only with them', async () => {
    const { store, files } = await storeWithFiles();
    const glass = await makeIssuer('https://break-glass.example.com', 'EdDSA', 'glass-1');
    await writeFile(`${files.dir}/break-glass.json`, JSON.stringify(glass.jwks));
    await files.writePolicy(policyYaml(issuer.issuer, breakGlassYaml('break-glass.json')));
    await eventually(() => store.current()?.policy.breakGlass !== undefined);
    expect(store.current()?.policy.breakGlass).toMatchObject({ issuer: glass.issuer, maxTtlSeconds: 1800, reviewWindowSeconds: 86400 });
    expect(store.current()?.keys.find(glass.issuer, 'glass-1')).toBeDefined();
    expect(store.notReady()).toEqual([]);
  });

  it('is refused, keeping the last good policy, when it shares a key with an ordinary issuer', async () => {
    const { store, files, events } = await storeWithFiles();
    // The ordinary issuer's public key under another kid: the same key all the same.
    const sameKey = { keys: issuer.jwks.keys.map((key) => ({ ...key, kid: 'glass-1' })) };
    await writeFile(`${files.dir}/break-glass.json`, JSON.stringify(sameKey));
    await files.writePolicy(policyYaml(issuer.issuer, `${breakGlassYaml('break-glass.json')}approvals:\n  required: 3\n`));
    await eventually(() => events.length > 0);
    expect(events[0]).toMatch(
      /^policy:error:.*break-glass issuer "https:\/\/break-glass.example.com" shares a key with issuer "https:\/\/change.example.com"/,
    );
    expect(store.current()?.policy.breakGlass).toBeUndefined();
    expect(store.current()?.policy.required).toBe(2);
  });

  it('refuses a later JWKS of its own that holds an ordinary key, keeping its last good keys', async () => {
    const { store, files, events } = await storeWithFiles();
    const glass = await makeIssuer('https://break-glass.example.com', 'EdDSA', 'glass-1');
    await writeFile(`${files.dir}/break-glass.json`, JSON.stringify(glass.jwks));
    await files.writePolicy(policyYaml(issuer.issuer, breakGlassYaml('break-glass.json')));
    await eventually(() => store.current()?.policy.breakGlass !== undefined);
    await writeFile(`${files.dir}/break-glass.json`, JSON.stringify({ keys: [...glass.jwks.keys, ...issuer.jwks.keys] }));
    await eventually(() => events.some((e) => e.startsWith('jwks:error')));
    expect(events.find((e) => e.startsWith('jwks:error'))).toMatch(/shares a key/);
    expect(store.current()?.keys.find(glass.issuer, issuer.privateJwk.kid as string)).toBeUndefined();
    expect(store.current()?.keys.find(glass.issuer, 'glass-1')).toBeDefined();
  });

  it('is refused, keeping the last good policy, when its key is also registered for an approver, and so is a later JWKS of its own', async () => {
    const { store, files, events } = await storeWithFiles();
    const glass = await makeIssuer('https://break-glass.example.com', 'EdDSA', 'glass-1');
    const dave = await makeApprover('dave@example.com');
    await writeFile(`${files.dir}/break-glass.json`, JSON.stringify(glass.jwks));
    await writeFile(`${files.dir}/dave.json`, JSON.stringify(glass.jwks));
    const registry = 'approvers:\n  - identity: dave@example.com\n    jwksFile: dave.json\n';
    await files.writePolicy(policyYaml(issuer.issuer, `${breakGlassYaml('break-glass.json')}${registry}`));
    await eventually(() => events.length > 0);
    expect(events[0]).toMatch(
      /^policy:error:.*key "glass-1" of issuer https:\/\/break-glass.example.com is also registered for approver "dave@example.com"/,
    );
    expect(store.current()?.policy.breakGlass).toBeUndefined();

    // With keys of its own it loads; a later JWKS that takes the approver's key is refused, its last good keys kept.
    // (The refused policy's files are not watched: the policy in force names none of them.)
    await writeFile(`${files.dir}/dave.json`, JSON.stringify(dave.jwks));
    await store.reloadNow();
    await eventually(() => store.current()?.policy.breakGlass !== undefined);
    await writeFile(`${files.dir}/break-glass.json`, JSON.stringify({ keys: [...glass.jwks.keys, ...dave.jwks.keys] }));
    await eventually(() => events.some((e) => e.startsWith('jwks:error') && /also registered for approver "dave@example.com"/.test(e)));
    expect(store.current()?.keys.find(glass.issuer, 'dave@example.com-1')).toBeUndefined();
    expect(store.current()?.keys.find(glass.issuer, 'glass-1')).toBeDefined();
  });

  it('is refused when it is also an ordinary issuer, or reads an ordinary issuer JWKS', async () => {
    const { store, files, events } = await storeWithFiles();
    await files.writePolicy(policyYaml(issuer.issuer, breakGlassYaml('jwks.json', issuer.issuer)));
    await eventually(() => events.length > 0);
    expect(events[0]).toMatch(/breakGlass.issuer: "https:\/\/change.example.com" is also an ordinary issuer/);
    expect(events[0]).toMatch(/breakGlass: its JWKS is the one of ordinary issuer/);
    expect(store.current()?.policy.breakGlass).toBeUndefined();
  });
});
