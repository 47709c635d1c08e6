// One server under benchmark, in its own process so the load generator does not share its event
// loop: twokey's real server as built (dist/), or a baseline fastify HTTPS server configured like
// it (same TLS, keep-alive, body limit and JSON parsing) that answers allowed without judging.
// Plain JavaScript on purpose: the server under test runs compiled code, as in production.
//
// IPC: sends {ready, port}; answers "eld" with the event-loop delay since the last "eld-reset".
import { readFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import Fastify from 'fastify';
import { pino } from 'pino';
import { DEFAULT_BODY_LIMIT } from '../dist/server/app.js';
import { createLogger } from '../dist/server/logger.js';
import { startServer } from '../dist/server/serve.js';

const [mode, dir] = process.argv.slice(2);
if ((mode !== 'baseline' && mode !== 'twokey') || !dir) {
  process.stderr.write('usage: server.mjs baseline|twokey <dir>\n');
  process.exit(2);
}
const tls = { certPath: `${dir}/tls.crt`, keyPath: `${dir}/tls.key` };

let port;
if (mode === 'baseline') {
  const app = Fastify({
    https: { cert: readFileSync(tls.certPath), key: readFileSync(tls.keyPath) },
    bodyLimit: DEFAULT_BODY_LIMIT,
    logger: false,
    forceCloseConnections: 'idle',
  });
  app.post('/validate', async (request) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: request.body.request.uid, allowed: true },
  }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = app.server.address().port;
} else {
  // Production log level, written where it costs what a log file costs.
  const logger = createLogger('info', pino.destination({ dest: '/dev/null', sync: false }));
  const server = await startServer({ policyPath: `${dir}/policy.yaml`, tls, host: '127.0.0.1', port: 0, logger });
  port = server.port;
}

const eventLoop = monitorEventLoopDelay({ resolution: 5 });
eventLoop.enable();
process.on('message', (message) => {
  if (message === 'eld-reset') eventLoop.reset();
  if (message === 'eld')
    process.send?.({ eventLoop: { maxMs: eventLoop.max / 1e6, p99Ms: eventLoop.percentile(99) / 1e6 }, memory: process.memoryUsage() });
});
process.send?.({ ready: true, port });
// Exit cleanly on SIGTERM, so --cpu-prof and --heap-prof write their profiles.
process.on('SIGTERM', () => process.exit(0));
