/**
 * Prometheus metrics, and the route that serves them. One registry per server, so tests and the
 * benchmark can run several.
 */
import type { FastifyPluginCallback } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface TwokeyMetrics {
  readonly registry: Registry;
  readonly reviews: Counter<'verdict' | 'action' | 'dry_run' | 'route'>;
  readonly decisionSeconds: Histogram<'verdict'>;
  readonly notCounted: Counter<'code'>;
  readonly wouldRefuse: Counter<'action' | 'reason' | 'dry_run'>;
  readonly breakGlass: Counter<'action' | 'dry_run'>;
  readonly badRequests: Counter<'reason'>;
  readonly shed: Counter<'limit'>;
  readonly reloads: Counter<'kind' | 'result'>;
  /** Whether the server is ready, read each time the metrics are collected (not only when /readyz is asked). */
  readinessFrom(ready: () => boolean): void;
  readonly events: Counter<'result'>;
  readonly namespaceWatch: Counter<'event'>;
  readonly namespaces: Gauge;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): TwokeyMetrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  let isReady = () => false;
  new Gauge({
    name: 'twokey_ready',
    help: '1 when the server is ready to judge (policy, keys and namespace cache loaded), as /readyz would answer.',
    registers: [registry],
    collect() {
      this.set(isReady() ? 1 : 0);
    },
  });
  return {
    registry,
    readinessFrom(ready) {
      isReady = ready;
    },
    reviews: new Counter({
      name: 'twokey_admission_reviews_total',
      help: 'Admission reviews answered, by verdict (admitted|refused), gated action (none when not gated), dry run and route.',
      labelNames: ['verdict', 'action', 'dry_run', 'route'],
      registers: [registry],
    }),
    decisionSeconds: new Histogram({
      name: 'twokey_admission_decision_seconds',
      help: 'Time to judge one admission review, from parsed body to answer.',
      labelNames: ['verdict'],
      buckets: [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    notCounted: new Counter({
      name: 'twokey_approvals_not_counted_total',
      help: 'Approval annotations on gated requests that did not count, by reason code.',
      labelNames: ['code'],
      registers: [registry],
    }),
    wouldRefuse: new Counter({
      name: 'twokey_would_refuse_total',
      help: 'Reviews admitted in warn mode that enforce mode would refuse, by gated action, reason (no-approvals|too-few-approvals|missing-group|break-glass-not-counted|unmapped-user) and dry run.',
      labelNames: ['action', 'reason', 'dry_run'],
      registers: [registry],
    }),
    breakGlass: new Counter({
      name: 'twokey_break_glass_admissions_total',
      help: 'Reviews admitted by a break-glass token instead of two approvals, by gated action and dry run.',
      labelNames: ['action', 'dry_run'],
      registers: [registry],
    }),
    badRequests: new Counter({
      name: 'twokey_bad_requests_total',
      help: 'Requests to the review endpoints refused with an HTTP error because the body was not an AdmissionReview v1.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    shed: new Counter({
      name: 'twokey_connections_shed_total',
      help: 'Connections closed to keep clients within the server limits, by limit (connections|peer-connections|body-memory|pipelined).',
      labelNames: ['limit'],
      registers: [registry],
    }),
    reloads: new Counter({
      name: 'twokey_config_reloads_total',
      help: 'Policy and JWKS reloads, by kind (policy|jwks|tls) and result (ok|error). An error keeps the last good version in force.',
      labelNames: ['kind', 'result'],
      registers: [registry],
    }),
    events: new Counter({
      name: 'twokey_events_total',
      help: 'Kubernetes Events about decisions, by result (sent|updated|deduplicated|dropped|failed). dropped: the queue was full.',
      labelNames: ['result'],
      registers: [registry],
    }),
    namespaceWatch: new Counter({
      name: 'twokey_namespace_watch_total',
      help: 'Namespace watch lifecycle, by event (synced|error|restart).',
      labelNames: ['event'],
      registers: [registry],
    }),
    namespaces: new Gauge({
      name: 'twokey_namespace_cache_size',
      help: 'Namespaces in the cache, as seen through the watch.',
      registers: [registry],
    }),
  };
}

/** GET /metrics: the registry in Prometheus text format. */
export const metricsRoute: FastifyPluginCallback<{ readonly registry: Registry }> = (app, options, done) => {
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', options.registry.contentType);
    return options.registry.metrics();
  });
  done();
};
