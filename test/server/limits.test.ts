/**
 * The client limits on a served webhook, with small numbers: which connection goes when a peer or
 * the server is at its limit.
 */
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { TIMEOUTS } from '../../src/server/limits.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { Clients } from '../support/clients.ts';
import { endpointOf, eventually, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

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

async function serve(limits: { maxConnections?: number; maxConnectionsPerPeer?: number }) {
  server = await serveFiles(files, { limits: { maxConnections: 64, maxConnectionsPerPeer: 64, ...limits } });
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
