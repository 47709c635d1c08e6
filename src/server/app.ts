/**
 * The webhook's HTTP server: one fastify instance composed of three plugins, the review routes
 * (reviews.ts), health and readiness (health.ts) and metrics (metrics.ts), behind the client limits
 * (limits.ts). What belongs to the whole server is here: its options, draining, and the limits.
 */

import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyHttpsOptions, type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { OffThreadDigester } from '../change/digest.ts';
import type { ConfigSnapshot } from '../config/store.ts';
import { type NamespaceView, NO_CLUSTER_VIEW } from '../decision/gate.ts';
import type { Verdict } from '../decision/verdict.ts';
import type { AdmissionRequest } from '../kubernetes/admission.ts';
import { health } from './health.ts';
import { type ClientLimitOptions, ClientLimits, DEFAULT_CLIENT_LIMITS, MIB, timeoutOptions } from './limits.ts';
import { createMetrics, metricsRoute, type TwokeyMetrics } from './metrics.ts';
import { reviews } from './reviews.ts';

/** The largest review kube-apiserver sends: its object and old object at 3 MiB each, and 1 MiB for the rest (README, "Limits"). */
export const DEFAULT_BODY_LIMIT = 7 * MIB;

/** Something that must be loaded before the server can judge. */
export interface ReadinessCheck {
  /** Why it is not ready; empty when it is. */
  notReady(): string[];
}

export interface TwokeyAppOptions {
  /** The policy and keys in force. */
  readonly config: {
    current(): ConfigSnapshot | undefined;
    requestRefresh?(issuer: string): void;
  };
  readonly readiness?: readonly ReadinessCheck[];
  readonly namespaces?: NamespaceView;
  readonly logger?: Logger;
  readonly metrics?: TwokeyMetrics;
  readonly https?: { key: string | Buffer; cert: string | Buffer };
  readonly bodyLimit?: number;
  /** What clients may hold of the server: connections and body bytes, per peer and in total. */
  readonly limits?: ClientLimitOptions;
  /** Seconds since the epoch; injectable for tests. */
  readonly clock?: () => number;
  /** Computes digests of large objects off the event loop. */
  readonly offThread?: OffThreadDigester;
  /** Called after the answer is sent, for every judged review. */
  readonly onDecision?: (request: AdmissionRequest, verdict: Verdict) => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    twokeyMetrics: TwokeyMetrics;
    /** Marks the server as shutting down: /readyz fails from now on. */
    markDraining(): void;
  }
}

export function buildApp(options: TwokeyAppOptions): FastifyInstance {
  const metrics = options.metrics ?? createMetrics({ defaultMetrics: false });
  let draining = false;

  const bodyLimit = options.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const limits = new ClientLimits(options.limits ?? DEFAULT_CLIENT_LIMITS, bodyLimit, (limit) => metrics.shed.inc({ limit }));
  const serverOptions: FastifyServerOptions = {
    bodyLimit,
    // One decision line per review replaces fastify's per-request lines.
    logController: new LogController({ disableRequestLogging: true }),
    forceCloseConnections: 'idle',
    // A review that reaches a closing server is still judged (an HTTP 503 would refuse it).
    return503OnClosing: false,
    ...(options.logger ? { loggerInstance: options.logger } : { logger: false }),
  };
  const app = (options.https
    ? Fastify({ ...serverOptions, ...timeoutOptions(options.https) } as FastifyHttpsOptions<HttpsServer>)
    : Fastify({ ...serverOptions, ...timeoutOptions() })) as unknown as FastifyInstance;
  limits.guard(app, options.https !== undefined);
  app.decorate('twokeyMetrics', metrics);
  app.decorate('markDraining', () => {
    draining = true;
  });

  // While draining, every answer closes its connection, so the apiserver's next review opens one
  // to a pod that is staying.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close');
    done(null, payload);
  });

  app.register(reviews, {
    config: options.config,
    namespaces: options.namespaces ?? NO_CLUSTER_VIEW,
    metrics,
    limits,
    bodyLimit,
    clock: options.clock ?? (() => Date.now() / 1000),
    ...(options.offThread ? { offThread: options.offThread } : {}),
    ...(options.onDecision ? { onDecision: options.onDecision } : {}),
  });
  const notReady = () => {
    const reasons = draining ? ['shutting down'] : [];
    if (!options.config.current()) reasons.push('no policy loaded');
    for (const check of options.readiness ?? []) reasons.push(...check.notReady());
    return reasons;
  };
  metrics.readinessFrom(() => notReady().length === 0);
  app.register(health, { notReady });
  app.register(metricsRoute, { registry: metrics.registry });
  return app;
}
