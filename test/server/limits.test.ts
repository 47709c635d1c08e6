/**
 * The client limits on a served webhook, with small numbers: which connection goes when a peer or
 * the server is at its limit, and how bodies wait for or win room.
 */
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { type ClientLimitOptions, parsedSizeEstimate, TIMEOUTS } from '../../src/server/limits.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { Clients, closed } from '../support/clients.ts';
import { endpointOf, eventually, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

const KIB = 1024;

let files: ServerFiles;
let server: RunningServer | undefined;
let clients: Clients;

beforeAll(async () => {
  files = await serverFiles(await makeIssuer());
});
afterEach(async () => {
  clients?.destroyAll();
  await server?.shutdown();
  server = undefined;
});
afterAll(async () => {
  await files.cleanup();
});

async function serve(limits: Partial<ClientLimitOptions>) {
  server = await serveFiles(files, {
    bodyLimit: 64 * KIB,
    limits: {
      maxConnections: 64,
      maxConnectionsPerPeer: 64,
      bodyMemory: 1024 * KIB,
      bodyMemoryPerPeer: 1024 * KIB,
      parseMemory: 4096 * KIB,
      ...limits,
    },
  });
  clients = new Clients(server.port, files.ca.certPem);
  return server;
}

const review = async (running: RunningServer) =>
  (await callWebhook(endpointOf(running, files), admissionReview({ operation: 'CREATE', object: deployment() }))).kind;

/** Lets the server see what the clients did, then tells which sockets are still open. */
async function open(...sockets: Socket[]): Promise<boolean[]> {
  await new Promise((resolve) => setTimeout(resolve, 150));
  return sockets.map((socket) => !socket.closed);
}

const shed = async (running: RunningServer) =>
  (await running.app.twokeyMetrics.registry.getSingleMetricAsString('twokey_connections_shed_total')).trim();

describe('connection limits', () => {
  it("closes a peer's oldest connection that has not finished TLS, then its oldest idle one", async () => {
    const running = await serve({ maxConnectionsPerPeer: 3 });
    const [raw] = await clients.idle('127.0.0.2', 1);
    const first = await clients.secure('127.0.0.2');
    const second = await clients.secure('127.0.0.2');
    const third = await clients.secure('127.0.0.2');
    expect(await open(raw as Socket, first, second, third)).toEqual([false, true, true, true]);
    const fourth = await clients.secure('127.0.0.2');
    expect(await open(first, second, third, fourth)).toEqual([false, true, true, true]);
    expect(await shed(running)).toContain('twokey_connections_shed_total{limit="peer-connections"} 2');
  });

  it("refuses a peer's new connection when each of its connections has a request in flight", async () => {
    await serve({ maxConnectionsPerPeer: 2 });
    const uploads = [clients.upload('127.0.0.2', { declared: 1000, sent: 10 }), clients.upload('127.0.0.2', { declared: 1000, sent: 10 })];
    await eventually(async () => (await open(...uploads)).every(Boolean));
    const refused = await clients.secure('127.0.0.2');
    expect(await open(refused, ...uploads)).toEqual([false, true, true]);
  });

  it('makes room for a new connection with an idle connection of the peer holding the most', async () => {
    const running = await serve({ maxConnections: 6, maxConnectionsPerPeer: 4 });
    const crowd = [];
    for (let i = 0; i < 4; i += 1) crowd.push(await clients.secure('127.0.0.2'));
    const few = [await clients.secure('127.0.0.3'), await clients.secure('127.0.0.3')];
    const newcomer = await clients.secure('127.0.0.4');
    expect(await open(...crowd, ...few, newcomer)).toEqual([false, true, true, true, true, true, true]);
    expect(await review(running)).toBe('denied');
    expect(await shed(running)).toContain('twokey_connections_shed_total{limit="connections"} 2');
  });

  it('cuts a stalled upload of the peer holding the most when no connection is idle', async () => {
    const running = await serve({ maxConnections: 4, maxConnectionsPerPeer: 4 });
    const stalled = [0, 1, 2].map(() => clients.upload('127.0.0.2', { declared: 1000, sent: 10 }));
    stalled.push(clients.upload('127.0.0.3', { declared: 1000, sent: 10 }));
    await eventually(async () => (await open(...stalled)).every(Boolean));
    expect(await review(running)).toBe('denied');
    expect(await open(...stalled)).toEqual([false, true, true, true]);
  });

  it('bounds the time to finish a TLS handshake, to send headers, to send a request, and to sit idle', async () => {
    const running = await serve({});
    const node = running.app.server;
    expect([node.headersTimeout, node.requestTimeout, node.keepAliveTimeout]).toEqual([
      TIMEOUTS.headersMs,
      TIMEOUTS.requestMs,
      TIMEOUTS.keepAliveMs,
    ]);
    // kube-apiserver's client keeps idle connections up to 90 s; it sees a close sooner at once.
    expect(TIMEOUTS.keepAliveMs).toBeGreaterThanOrEqual(60_000);
  });
});

describe('parsed size estimates', () => {
  it('takes small bodies at the most JSON can grow, and counts the objects and arrays of larger ones, strings apart', () => {
    expect(parsedSizeEstimate(Buffer.from('{"a":[1,2]}'))).toBe(11 * 22);
    const real = Buffer.from(JSON.stringify({ env: Array.from({ length: 4000 }, (_, i) => ({ name: `VAR_${i}`, value: `value-${i}` })) }));
    expect(parsedSizeEstimate(real)).toBe(2 * real.length + 64 * 4002);
    // Brackets inside strings (and escaped quotes) are not objects or arrays.
    const strings = Buffer.from(JSON.stringify({ text: `${'{["\\'.repeat(30_000)}` }));
    expect(parsedSizeEstimate(strings)).toBe(2 * strings.length + 64);
    const hostile = Buffer.from(`[${'{},'.repeat(100_000)}{}]`);
    expect(parsedSizeEstimate(hostile)).toBeGreaterThan(20 * hostile.length);
  });
});

describe('body limits', () => {
  it('refuses a body declared over the limit from its headers, and closes the connection', async () => {
    await serve({});
    const upload = clients.upload('127.0.0.2', { declared: 64 * KIB + 1, sent: 0 });
    await closed(upload);
    expect(upload.answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(upload.answer).toContain('RequestEntityTooLarge');
  });

  it('cuts a chunked body as soon as it passes the limit', async () => {
    await serve({});
    const upload = clients.upload('127.0.0.2', { sent: 2 * 64 * KIB });
    await closed(upload);
    expect(upload.answer).toMatch(/^HTTP\/1\.1 413 /);
  });

  it("has a peer's body wait, unread, while the peer's other bodies use its share", async () => {
    await serve({ bodyMemoryPerPeer: 128 * KIB });
    const held = [0, 1].map(() => clients.upload('127.0.0.2', { declared: 60 * KIB, sent: 59 * KIB }));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const waiting = clients.upload('127.0.0.2', { declared: 60 * KIB, sent: 60 * KIB });
    const elsewhere = clients.upload('127.0.0.3', { declared: 60 * KIB, sent: 60 * KIB });
    await eventually(() => elsewhere.answer !== '');
    expect(waiting.answer).toBe('');
    clients.finish(held[0] as Socket, KIB);
    // Both are read once there is room: a body of spaces is not a review.
    await eventually(() => waiting.answer !== '');
    expect(held[0]?.answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(waiting.answer).toMatch(/^HTTP\/1\.1 400 /);
  });

  it('lets a body displace unfinished bodies of a peer holding more when the server is at its limit', async () => {
    const running = await serve({ bodyMemory: 192 * KIB, bodyMemoryPerPeer: 128 * KIB });
    const most = [0, 1].map(() => clients.upload('127.0.0.2', { declared: 60 * KIB, sent: 59 * KIB }));
    await new Promise((resolve) => setTimeout(resolve, 150));
    const other = clients.upload('127.0.0.3', { declared: 60 * KIB, sent: 59 * KIB });
    await new Promise((resolve) => setTimeout(resolve, 150));
    const newcomer = clients.upload('127.0.0.4', { declared: 60 * KIB, sent: 60 * KIB });
    await eventually(() => newcomer.answer !== '');
    expect(await open(...most, other)).toEqual([false, true, true]);
    expect(await review(running)).toBe('denied');
    expect(await shed(running)).toContain('twokey_connections_shed_total{limit="body-memory"} 1');
  });
});
