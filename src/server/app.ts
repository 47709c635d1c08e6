/**
 * The HTTP transport: fastify routes around the decision. Parsing, logging, metrics and the
 * response shape live here; the judgement itself is `decide`.
 */

import type { Server as HttpsServer } from 'node:https';
import { performance } from 'node:perf_hooks';
import Fastify, {
  type FastifyError,
  type FastifyHttpsOptions,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchemaValidationError,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { Compile } from 'typebox/compile';
import type { OffThreadDigester } from '../change/digest.ts';
import type { ConfigSnapshot } from '../config/store.ts';
import { cannotJudge, decide } from '../decision/decide.ts';
import { type NamespaceView, NO_CLUSTER_VIEW } from '../decision/gate.ts';
import type { Verdict } from '../decision/verdict.ts';
import { type Decision, internalError } from '../decision/wording.ts';
import { describeError } from '../errors.ts';
import {
  type AdmissionRequest,
  AdmissionReviewSchema,
  type AdmissionReviewWire,
  admissionReviewResponse,
  objectName,
  toAdmissionRequest,
} from '../kubernetes/admission.ts';
import { qualifiedResource } from '../kubernetes/objects.ts';
import { type ClientLimitOptions, ClientLimits, DEFAULT_CLIENT_LIMITS, MIB, parsedSizeEstimate, timeoutOptions } from './limits.ts';
import { createMetrics, type TwokeyMetrics } from './metrics.ts';

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

/** A Status body, which kube-apiserver quotes when a webhook answers with an HTTP error. */
function statusBody(code: number, reason: string, message: string) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `twokey: ${message}`,
    reason,
    code,
  };
}

type SchemaIssue = {
  instancePath?: string;
  message?: string;
  keyword?: string;
};

function describeSchemaIssues(issues: readonly SchemaIssue[]): string {
  const lines = issues.slice(0, 5).map((issue) => {
    const at = issue.instancePath ? issue.instancePath.replace(/^\//, '').replaceAll('/', '.') : '(body)';
    if (at === 'apiVersion')
      return 'apiVersion must be admission.k8s.io/v1 (twokey serves AdmissionReview v1 only: set admissionReviewVersions: [v1])';
    if (at === 'kind') return 'kind must be AdmissionReview';
    if (issue.keyword === 'required' && at === 'request') return `request ${issue.message ?? 'is incomplete'}`;
    return `${at} ${issue.message ?? 'is invalid'}`;
  });
  return `the body is not an AdmissionReview v1: ${[...new Set(lines)].join('; ')}`;
}

/** Why approvals did not count, for the decision log line: bounded however many annotations came. */
function loggedReasons(reports: readonly { key: string; code?: string }[]): string[] {
  const reasons = reports.slice(0, 20).map((a) => `${a.key}: ${a.code}`);
  if (reports.length > reasons.length) reasons.push(`... ${reports.length - reasons.length} more`);
  return reasons;
}

export function buildApp(options: TwokeyAppOptions): FastifyInstance {
  const metrics = options.metrics ?? createMetrics({ defaultMetrics: false });
  const clock = options.clock ?? (() => Date.now() / 1000);
  const namespaces = options.namespaces ?? NO_CLUSTER_VIEW;
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
    schemaErrorFormatter: (errors) => new Error(describeSchemaIssues(errors as SchemaIssue[])),
  };
  const app = (options.https
    ? Fastify({ ...serverOptions, ...timeoutOptions(options.https) } as FastifyHttpsOptions<HttpsServer>)
    : Fastify({ ...serverOptions, ...timeoutOptions() })) as unknown as FastifyInstance;
  limits.guard(app, options.https !== undefined);
  app.decorate('twokeyMetrics', metrics);
  app.decorate('markDraining', () => {
    draining = true;
  });

  // Route schemas are TypeBox (JSON Schema) checked by TypeBox's compiler: no coercion, no defaults.
  app.setValidatorCompiler(({ schema }) => {
    const validator = Compile(schema as Parameters<typeof Compile>[0]);
    return (data: unknown) =>
      validator.Check(data)
        ? { value: data }
        : {
            error: validator.Errors(data) as unknown as FastifySchemaValidationError[],
          };
  });

  // Reviews are parsed only when their estimated size as JavaScript values fits what the reviews
  // being judged leave: a hostile JSON text can grow twenty times its size (README, "Limits").
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const text = body as Buffer;
    limits.admitParse(request.raw, parsedSizeEstimate(text)).then(
      (admitted) =>
        admitted
          ? parseJson(request, text.toString('utf8'), done)
          : done(
              Object.assign(new Error('the review would take more memory than the server gives all reviews being judged'), {
                statusCode: 413,
                code: 'TWOKEY_REVIEW_TOO_LARGE_PARSED',
              }),
              undefined,
            ),
      (error: unknown) => done(error as Error, undefined),
    );
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const code = error.statusCode ?? 500;
    if (code >= 500) {
      request.log.error({ err: error }, 'request failed');
      return reply.code(500).send(statusBody(500, 'InternalError', 'internal error'));
    }
    const bodyError = error.validation !== undefined || (error.code ?? '').startsWith('FST_ERR_CTP') || error.code === 'FST_ERR_VALIDATION';
    const status = code === 413 ? 413 : 400;
    const message =
      error.validation !== undefined
        ? error.message
        : error.code === 'TWOKEY_REVIEW_TOO_LARGE_PARSED'
          ? `${error.message} (its JSON holds too many objects and arrays for its size)`
          : code === 413
            ? `the body is larger than the server's limit of ${bodyLimit} bytes`
            : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
              ? 'the body must be an AdmissionReview v1 sent as application/json'
              : `the body is not an AdmissionReview v1: ${error.message}`;
    metrics.badRequests.inc({
      reason: bodyError ? (status === 413 ? 'too-large' : 'not-a-review') : 'other',
    });
    request.log.warn({ status, error: message }, 'bad admission request');
    return reply.code(status).send(statusBody(status, status === 413 ? 'RequestEntityTooLarge' : 'BadRequest', message));
  });

  // While draining, every answer closes its connection, so the apiserver's next review opens one
  // to a pod that is staying.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (draining) reply.header('connection', 'close');
    done(null, payload);
  });

  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send(statusBody(404, 'NotFound', `no route ${request.method} ${request.url.split('?')[0]}; reviews go to POST /validate`));
  });

  const judge = (route: '/validate' | '/validate/critical') => {
    const forceCritical = route === '/validate/critical';
    return async (request: FastifyRequest<{ Body: AdmissionReviewWire }>, reply: FastifyReply) => {
      const started = performance.now();
      const admission = toAdmissionRequest(request.body);
      let verdict: Decision;
      const snapshot = options.config.current();
      if (snapshot === undefined) {
        verdict = cannotJudge('the policy and keys are not loaded yet');
      } else {
        try {
          verdict = await decide(admission, {
            ...snapshot,
            namespaces,
            forceCritical,
            now: clock(),
            ...(options.offThread ? { offThread: options.offThread } : {}),
          });
        } catch (error) {
          // decide() does not throw; this is the last line that keeps an error from admitting.
          verdict = cannotJudge(internalError(describeError(error)));
        }
      }
      const answer = admissionReviewResponse(admission.uid, verdict);
      const durationMs = performance.now() - started;
      const verdictLabel = verdict.allowed ? 'admitted' : 'refused';
      metrics.reviews.inc({
        verdict: verdictLabel,
        action: verdict.action ?? 'none',
        dry_run: String(admission.dryRun),
        route,
      });
      metrics.decisionSeconds.observe({ verdict: verdictLabel }, durationMs / 1000);
      const notCounted = verdict.approvals.filter((a) => a.status !== 'counted');
      for (const report of notCounted) metrics.notCounted.inc({ code: report.code ?? 'other' });
      // A kid the issuer's JWKS lacks may be a rotation: fetch that issuer's keys again, in the background.
      for (const issuer of new Set(notCounted.flatMap((a) => (a.unknownKidOf ? [a.unknownKidOf] : [])))) {
        options.config.requestRefresh?.(issuer);
      }
      request.log.info(
        {
          uid: admission.uid,
          user: admission.user.username,
          operation: admission.operation,
          resource: qualifiedResource(admission.resource),
          subResource: admission.subResource || undefined,
          namespace: admission.namespace || undefined,
          name: objectName(admission) || undefined,
          dryRun: admission.dryRun,
          route,
          action: verdict.action,
          verdict: verdictLabel,
          summary: verdict.summary,
          reasons: notCounted.length ? loggedReasons(notCounted) : undefined,
          change: verdict.change,
          approvers: verdict.approvers,
          digest: verdict.digest,
          // A request gated as several actions: each one's digest, change and approvers.
          aspects: verdict.aspects.length > 1 ? verdict.aspects : undefined,
          durationMs: Math.round(durationMs * 1000) / 1000,
        },
        'admission decision',
      );
      if (options.onDecision) {
        const notify = options.onDecision;
        reply.raw.once('finish', () => setImmediate(() => notify(admission, verdict)));
      }
      return reply.send(answer);
    };
  };

  const reviewRoute = { schema: { body: AdmissionReviewSchema } };
  app.post('/validate', reviewRoute, judge('/validate'));
  app.post('/validate/critical', reviewRoute, judge('/validate/critical'));

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const reasons = draining ? ['shutting down'] : [];
    if (!options.config.current()) reasons.push('no policy loaded');
    for (const check of options.readiness ?? []) reasons.push(...check.notReady());
    metrics.ready.set(reasons.length === 0 ? 1 : 0);
    return reasons.length === 0 ? { status: 'ready' } : reply.code(503).send({ status: 'not ready', reasons });
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return app;
}
