/**
 * HTTP/1.1 pipelining on the webhook port. Node's HTTP server parses every request in a chunk it
 * has read and starts each one, however many are already waiting to be answered on that
 * connection. A client that pipelines GET /metrics (rendered afresh for every request) on a few
 * dozen connections and never reads the answers would queue minutes of work on the event loop; a
 * connection with more than a few requests waiting is closed instead (kube-apiserver sends one at
 * a time), and kube-apiserver's reviews are answered in time, during the flood and after it.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { type Served, serveCli } from '../support/cli.ts';
import { endpointOf, SERVICE_NAME, type ServerFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

const WEBHOOK_TIMEOUT_MS = 5000;

/** The hostile client, a process of its own: CONNS connections, each pipelining BYTES of GET PATH, never reading; it exits after SECONDS. */
const FLOOD = `
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
const [port, caFile, conns, bytes, path, seconds] = process.argv.slice(2);
const ca = readFileSync(caFile, 'utf8');
const one = 'GET ' + path + ' HTTP/1.1\\r\\nHost: ${SERVICE_NAME}\\r\\n\\r\\n';
const chunk = Buffer.from(one.repeat(Math.floor(65536 / one.length)));
setTimeout(() => process.exit(0), Number(seconds) * 1000);
for (let c = 0; c < Number(conns); c += 1) {
  const s = connect({ host: '127.0.0.1', port: Number(port), servername: '${SERVICE_NAME}', ca });
  s.on('error', () => {});
  s.once('secureConnect', () => {
    let sent = 0;
    const pump = () => {
      while (sent < Number(bytes)) {
        sent += chunk.length;
        if (!s.write(chunk)) { s.once('drain', pump); return; }
      }
    };
    pump();
    s.pause();
  });
}
`;

let files: ServerFiles;
let dir: string;
let served: Served | undefined;

beforeAll(async () => {
  files = await serverFiles(await makeIssuer());
  dir = await mkdtemp(join(tmpdir(), 'twokey-pipelining-'));
  await writeFile(join(dir, 'flood.mjs'), FLOOD);
  await writeFile(join(dir, 'ca.pem'), files.ca.certPem);
});
afterEach(() => {
  served?.child.kill('SIGKILL');
  served = undefined;
});
afterAll(async () => {
  await files.cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function timedReview(server: Served): Promise<{ kind: string; ms: number }> {
  const started = performance.now();
  const outcome = await callWebhook(
    { ...endpointOf(server, files), timeoutSeconds: WEBHOOK_TIMEOUT_MS / 1000 },
    admissionReview({ operation: 'CREATE', object: deployment() }),
  );
  return { kind: outcome.kind, ms: Math.round(performance.now() - started) };
}

describe('a client that pipelines requests and never reads the answers', () => {
  it('does not keep kube-apiserver waiting', async () => {
    served = await serveCli(['--config', files.policy, '--tls-cert', files.cert, '--tls-key', files.key], undefined, {
      NODE_OPTIONS: '--max-semi-space-size=4',
    });
    const server = served;
    // 64 connections (a quarter of one address's allowance), 2 MB of GET /metrics each, for 4 seconds.
    const flood = spawn(
      process.execPath,
      [join(dir, 'flood.mjs'), String(server.port), join(dir, 'ca.pem'), '64', '2000000', '/metrics', '4'],
      {
        stdio: 'ignore',
      },
    );
    const flooded = new Promise((resolve) => flood.once('exit', resolve));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      const during = await timedReview(server);
      await flooded;
      // The client has gone: its connections are closed.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const after = await timedReview(server);
      expect(during.kind).toBe('denied');
      expect(during.ms).toBeLessThan(WEBHOOK_TIMEOUT_MS);
      expect(after.kind).toBe('denied');
      expect(after.ms).toBeLessThan(WEBHOOK_TIMEOUT_MS);
    } finally {
      flood.kill('SIGKILL');
    }
  }, 60_000);
});
