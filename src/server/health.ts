/**
 * GET /healthz (the process is alive) and, where the server judges reviews, GET /readyz (ready to
 * judge: 503 with the reasons until it is). The plain-HTTP metrics listener serves /healthz alone.
 */
import type { FastifyPluginCallback } from 'fastify';

export interface HealthOptions {
  /** Why the server cannot judge yet; empty when it can. Without it there is no /readyz. */
  readonly notReady?: () => string[];
}

export const health: FastifyPluginCallback<HealthOptions> = (app, options, done) => {
  app.get('/healthz', async () => ({ status: 'ok' }));
  const { notReady } = options;
  if (notReady) {
    app.get('/readyz', async (_request, reply) => {
      const reasons = notReady();
      return reasons.length === 0 ? { status: 'ready' } : reply.code(503).send({ status: 'not ready', reasons });
    });
  }
  done();
};
