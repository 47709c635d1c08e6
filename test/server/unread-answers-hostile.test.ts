/**
 * A client that sends complete reviews and never reads their answers. Node applies no timeout once
 * a request has arrived, so an answer the client does not read stays unsent for as long as it
 * likes: it must hold nothing another review needs (the body and parse budgets are given back when
 * the answer is made), and no answer may be long (a uid is at most 256 characters, an error message
 * at most 1,024), so that unsent answers cost the server little.
 */

import { performance } from 'node:perf_hooks';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { MIB, parsedSizeEstimate } from '../../src/server/limits.ts';
import type { RunningServer } from '../../src/server/serve.ts';
import { endpointOf, SERVICE_NAME, type ServerFiles, serveFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

const WEBHOOK_TIMEOUT_MS = 5000;

let files: ServerFiles;
let server: RunningServer | undefined;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  files = await serverFiles(await makeIssuer());
});
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await server?.shutdown();
  server = undefined;
});
afterAll(async () => {
  await files.cleanup();
});

/**
 * A valid, ungated review (a ConfigMap) whose parsed-size estimate is exactly `estimate`: its uid
 * (echoed in the answer, so the answer is megabytes long) pads the bytes, and empty objects in
 * `request.options` (free-form) add 64 bytes of estimate each.
 */
function heavyReview(estimate: number, extraContainers: number): Buffer {
  const fixed = 7; // the root, request, kind, resource, userInfo, options, and the array
  const containers = fixed + extraContainers;
  const bytes = (estimate - 64 * containers) / 2;
  const head = '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"';
  const tail =
    '","kind":{"group":"","version":"v1","kind":"ConfigMap"},"resource":{"group":"","version":"v1","resource":"configmaps"},' +
    `"operation":"CREATE","userInfo":{"username":"attacker"},"options":{"a":[${Array(extraContainers).fill('{}').join(',')}]}}}`;
  const uid = 'u'.repeat(bytes - head.length - tail.length);
  const body = Buffer.from(head + uid + tail);
  expect(parsedSizeEstimate(body)).toBe(estimate);
  return body;
}

/** Sends `body` to /validate on a new TLS connection and never reads the answer (unless `read`). */
function sendAndNeverRead(port: number, body: Buffer, read = false): Promise<void> {
  const socket = tlsConnect({ host: '127.0.0.1', port, servername: SERVICE_NAME, ca: files.ca.certPem });
  socket.on('error', () => {});
  sockets.push(socket);
  return new Promise((resolve) => {
    socket.once('secureConnect', () => {
      socket.write(
        `POST /validate?timeout=5s HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      socket.write(body, () => resolve());
      // No 'data' listener and paused: the answer is never read.
      if (read) socket.resume();
      else socket.pause();
    });
  });
}

describe('a client that never reads its answers', () => {
  it('(control) answers in time when the same client reads its answers', async () => {
    server = await serveFiles(files);
    const body = heavyReview(16 * MIB, 32_868);
    for (let i = 0; i < 3; i += 1) await sendAndNeverRead(server.port, body, true);
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const started = performance.now();
    const outcome = await callWebhook(
      { ...endpointOf(server, files), timeoutSeconds: WEBHOOK_TIMEOUT_MS / 1000 },
      admissionReview({ operation: 'CREATE', object: deployment() }),
    );
    expect(outcome.kind).toBe('denied');
    expect(performance.now() - started).toBeLessThan(WEBHOOK_TIMEOUT_MS);
  }, 30_000);

  it("does not hold the server's parse budget, so kube-apiserver's reviews are still answered in time", async () => {
    // The production defaults: 7 MiB bodies, 32 MiB of bodies per peer, a 48 MiB parse budget.
    server = await serveFiles(files);
    // Three reviews of 7 MiB (21 MiB, within one peer's 32 MiB body share) whose estimates
    // (16 MiB each) fill the 48 MiB parse budget that all peers share.
    const body = heavyReview(16 * MIB, 32_868);
    expect(body.length).toBeLessThanOrEqual(7 * MIB);
    for (let i = 0; i < 3; i += 1) await sendAndNeverRead(server.port, body);
    // Let the server answer them, into connections nobody reads.
    await new Promise((resolve) => setTimeout(resolve, 3000));

    // kube-apiserver (any other peer) now sends an ordinary review.
    const started = performance.now();
    const outcome = await callWebhook(
      { ...endpointOf(server, files), timeoutSeconds: WEBHOOK_TIMEOUT_MS / 1000 },
      admissionReview({ operation: 'CREATE', object: deployment() }),
    );
    const ms = performance.now() - started;
    expect(outcome.kind, JSON.stringify(outcome).slice(0, 300)).toBe('denied');
    expect(ms).toBeLessThan(WEBHOOK_TIMEOUT_MS);
  }, 60_000);

  it('answers a review with a uid longer than any kube-apiserver sends, or a body with a long key, briefly', async () => {
    server = await serveFiles(files);
    const review = admissionReview({ operation: 'CREATE', object: deployment() }) as { request: Record<string, unknown> };
    const longUid = JSON.stringify({ ...review, request: { ...review.request, uid: 'u'.repeat(1_000_000) } });
    const longKey = JSON.stringify({ ...review, request: { ...review.request, kind: { ['k'.repeat(1_000_000)]: 1 } } });
    for (const body of [longUid, longKey]) {
      const outcome = await callWebhook({ ...endpointOf(server, files), timeoutSeconds: 5 }, JSON.parse(body));
      expect(outcome.kind).toBe('failed');
      if (outcome.kind === 'failed') expect(outcome.message.length).toBeLessThan(2048);
    }
  }, 30_000);
});
