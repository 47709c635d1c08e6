/**
 * The namespace watch behind /validate: labels added and removed while running, a dropped watch,
 * a 410 relist, and fail-closed judgement before the cache knows a namespace.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { connectCluster } from '../../src/cluster/integration.ts';
import { loadKubeConfig } from '../../src/cluster/kubeconfig.ts';
import { NamespaceCache } from '../../src/cluster/namespaces.ts';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { createLogger } from '../../src/server/logger.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { FakeKube } from '../support/fake-kube.ts';
import { endpointOf, eventually, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

const logger = createLogger('silent');
let kube: FakeKube;
let files: ServerFiles;
let kubeconfig: string;

beforeAll(async () => {
  kube = new FakeKube();
  await kube.start();
  files = await serverFiles(await makeIssuer());
  kubeconfig = await kube.writeKubeconfig(join(files.dir, 'kubeconfig'));
});
afterAll(async () => {
  await kube.stop();
  await files.cleanup();
});

const caches: NamespaceCache[] = [];
afterEach(async () => {
  for (const cache of caches.splice(0)) await cache.stop();
});

function cache(): NamespaceCache {
  const c = new NamespaceCache(loadKubeConfig({ kubeconfig }), { logger, backoffMs: { initial: 50, max: 200 } });
  caches.push(c);
  return c;
}

describe('the namespace cache', () => {
  it('knows nothing and is unready until the first list, then follows labels as they change', async () => {
    kube.putNamespace('team-a');
    const c = cache();
    expect(c.notReady()).toEqual(['the namespace cache has not synced with the Kubernetes API yet']);
    expect(c.criticality('team-a')).toBe('unknown');
    await c.start();
    await eventually(() => c.notReady().length === 0);
    expect(c.criticality('team-a')).toBe('not-critical');
    expect(c.criticality('never-seen')).toBe('unknown');

    kube.putNamespace('team-a', { 'twokey.dev/critical': 'true' });
    await eventually(() => c.criticality('team-a') === 'critical', 1000);
    kube.putNamespace('team-a', {});
    await eventually(() => c.criticality('team-a') === 'not-critical', 1000);
    kube.bookmark();
    kube.putNamespace('team-b', { 'twokey.dev/critical': 'true' });
    await eventually(() => c.criticality('team-b') === 'critical', 1000);
  });

  it('follows whether a namespace is being deleted, and knows nothing of one it has not seen', async () => {
    kube.putNamespace('team-h');
    const c = cache();
    expect(c.deletion('team-h')).toBe('unknown');
    await c.start();
    await eventually(() => c.deletion('team-h') === 'active');
    expect(c.deletion('never-seen')).toBe('unknown');
    kube.putNamespace('team-h', {}, { deleting: true });
    await eventually(() => c.deletion('team-h') === 'deleting', 1000);
    kube.deleteNamespace('team-h');
    await eventually(() => c.deletion('team-h') === 'unknown', 1000);
  });

  it('keeps serving the last state while the watch is down, and catches up when it is back', async () => {
    kube.putNamespace('team-c');
    const c = cache();
    await c.start();
    await eventually(() => c.criticality('team-c') === 'not-critical');
    kube.dropWatches();
    expect(c.criticality('team-c')).toBe('not-critical');
    kube.putNamespace('team-c', { 'twokey.dev/critical': 'true' });
    await eventually(() => c.criticality('team-c') === 'critical', 3000);
  });

  it('relists after 410 Gone and drops what was deleted meanwhile', async () => {
    kube.putNamespace('team-d', { 'twokey.dev/critical': 'true' });
    kube.putNamespace('team-e');
    const c = cache();
    await c.start();
    await eventually(() => c.criticality('team-d') === 'critical' && c.criticality('team-e') === 'not-critical');
    const listsBefore = kube.requests.filter((r) => r === 'GET /api/v1/namespaces').length;
    // History is compacted, and changes made meanwhile are only visible through a fresh list.
    kube.dropWatches();
    kube.deleteNamespace('team-d');
    kube.putNamespace('team-e', { 'twokey.dev/critical': 'true' });
    kube.expireWatches();
    await eventually(() => c.criticality('team-e') === 'critical', 3000);
    expect(c.criticality('team-d')).toBe('unknown');
    expect(kube.requests.filter((r) => r === 'GET /api/v1/namespaces').length).toBeGreaterThan(listsBefore);
  });

  it('survives credentials that fail while the watch reconnects, and retries promptly once they work', async () => {
    kube.putNamespace('team-f');
    const kc = loadKubeConfig({ kubeconfig });
    const authenticate = kc.applySecurityAuthentication.bind(kc);
    let failing = false;
    // An exec credential plugin or token file that fails: the watch cannot even be opened.
    kc.applySecurityAuthentication = async (context) => {
      if (failing) throw new Error('credential helper: token service unavailable');
      return authenticate(context);
    };
    const c = new NamespaceCache(kc, { logger, backoffMs: { initial: 50, max: 2000 } });
    caches.push(c);
    await c.start();
    await eventually(() => c.criticality('team-f') === 'not-critical');
    // Failing long enough for the backoff to reach its maximum: the last state keeps being served.
    failing = true;
    kube.dropWatches();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(c.criticality('team-f')).toBe('not-critical');
    failing = false;
    kube.putNamespace('team-f', { 'twokey.dev/critical': 'true' });
    await eventually(() => c.criticality('team-f') === 'critical', 4000);
    // The open stream reset the backoff: the next failure is retried at the initial delay, not 2 s.
    kube.failLists = 0;
    failing = true;
    kube.dropWatches();
    await new Promise((resolve) => setTimeout(resolve, 20));
    failing = false;
    kube.putNamespace('team-f', {});
    await eventually(() => c.criticality('team-f') === 'not-critical', 1500);
  });

  it('opens no watch once stopped, even one that was opening when stop() came', async () => {
    kube.putNamespace('team-g');
    const kc = loadKubeConfig({ kubeconfig });
    const authenticate = kc.applySecurityAuthentication.bind(kc);
    let release: (() => void) | undefined;
    kc.applySecurityAuthentication = async (context) => {
      if (release === undefined && context.getUrl().includes('watch=true')) {
        const held = new Promise<void>((resolve) => {
          release = resolve;
        });
        await held;
      }
      return authenticate(context);
    };
    const c = new NamespaceCache(kc, { logger, backoffMs: { initial: 50, max: 200 } });
    const starting = c.start();
    await eventually(() => release !== undefined);
    // The list passed; the watch waits for its credentials while the cache is stopped.
    const before = kube.openWatches;
    await c.stop();
    release?.();
    await starting;
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(kube.openWatches).toBeLessThanOrEqual(before);
    kube.putNamespace('team-g', { 'twokey.dev/critical': 'true' });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(c.criticality('team-g')).not.toBe('critical');
  });

  it('retries with backoff while the API is down, and becomes ready when it answers', async () => {
    kube.failLists = 2;
    const c = cache();
    await c.start();
    expect(c.notReady()).not.toEqual([]);
    await eventually(() => c.notReady().length === 0, 3000);
  });
});

describe('/validate with the cluster', () => {
  let server: RunningServer;
  beforeAll(async () => {
    kube.putNamespace('shop');
    server = await serveFiles(files, {
      cluster: (context) =>
        connectCluster(loadKubeConfig({ kubeconfig }), {
          ...context,
          events: false,
          namespaceCache: { backoffMs: { initial: 50, max: 200 } },
        }),
    });
    await eventually(() => server.store.current() !== undefined);
  });
  afterAll(async () => {
    await server.shutdown();
  });

  const validate = (namespace: string) =>
    callWebhook(
      endpointOf(server, files, '/validate', 'labeled-workloads.twokey.dev'),
      admissionReview({ operation: 'CREATE', object: deployment({ namespace }) }),
    );

  it('refuses a workload within a second of its namespace being labelled critical, and admits it once unlabelled', async () => {
    const readyz = () => server.app.inject('/readyz').then((r) => r.statusCode);
    await eventually(async () => (await readyz()) === 200);
    expect((await validate('shop')).kind).toBe('allowed');
    kube.putNamespace('shop', { 'twokey.dev/critical': 'true' });
    const labelled = Date.now();
    await eventually(async () => (await validate('shop')).kind === 'denied', 1000);
    expect(Date.now() - labelled).toBeLessThan(1000);
    kube.putNamespace('shop', {});
    await eventually(async () => (await validate('shop')).kind === 'allowed', 1000);
  });

  it("admits the namespace controller's deletes of critical workloads only once the namespace's deletion has begun", async () => {
    kube.putNamespace('closing', { 'twokey.dev/critical': 'true' });
    const remove = () =>
      callWebhook(
        endpointOf(server, files, '/validate', 'labeled-workloads.twokey.dev'),
        admissionReview({
          operation: 'DELETE',
          oldObject: deployment({ namespace: 'closing' }),
          user: 'system:serviceaccount:kube-system:namespace-controller',
        }),
      );
    await eventually(async () => (await remove()).kind === 'denied');
    kube.putNamespace('closing', { 'twokey.dev/critical': 'true' }, { deleting: true });
    await eventually(async () => (await remove()).kind === 'allowed', 1000);
  });

  it('refuses, saying why, a workload in a namespace the cache has not seen', async () => {
    const outcome = await validate('brand-new');
    expect(outcome.kind).toBe('denied');
    if (outcome.kind === 'denied') expect(outcome.message).toContain('does not know the labels of namespace "brand-new" yet');
  });
});
