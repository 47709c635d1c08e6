/**
 * The review routes, POST /validate and /validate/critical, as one fastify plugin holding what
 * only they need: the AdmissionReview schema, body parsing within the parse budget, an error
 * handler that answers with a Status kube-apiserver can quote, and for each review its metrics,
 * the decision log line, a refetch of an issuer's keys on an unknown kid, and the decision
 * observer. Judging itself is judge.ts's.
 */
import { performance } from 'node:perf_hooks';
import type { FastifyError, FastifyPluginCallback, FastifyReply, FastifyRequest, FastifySchemaValidationError } from 'fastify';
import { Compile } from 'typebox/compile';
import type { OffThreadDigester } from '../change/digest.ts';
import type { ConfigSnapshot } from '../config/store.ts';
import type { NamespaceView } from '../decision/gate.ts';
import { type Verdict, wouldRefuseReason } from '../decision/verdict.ts';
import { type AdmissionRequest, AdmissionReviewSchema, type AdmissionReviewWire, objectName } from '../kubernetes/admission.ts';
import { qualifiedResource } from '../kubernetes/objects.ts';
import { printable, truncate } from '../text.ts';
import { judgeReview } from './judge.ts';
import { type ClientLimits, parsedSizeEstimate } from './limits.ts';
import type { TwokeyMetrics } from './metrics.ts';

export interface ReviewsOptions {
  /** The policy and keys in force, and who refetches an issuer's keys. */
  readonly config: {
    current(): ConfigSnapshot | undefined;
    requestRefresh?(issuer: string): void;
  };
  readonly namespaces: NamespaceView;
  readonly metrics: TwokeyMetrics;
  /** The server's client limits, whose parse budget bodies are parsed within. */
  readonly limits: ClientLimits;
  /** The largest body read, for the refusal of a larger one. */
  readonly bodyLimit: number;
  /** Seconds since the epoch. */
  readonly clock: () => number;
  readonly offThread?: OffThreadDigester;
  /** Called after the answer is sent, for every judged review. */
  readonly onDecision?: (request: AdmissionRequest, verdict: Verdict) => void;
}

/** The longest message of an HTTP error answer: what a client sent never makes it longer. */
const MAX_ERROR_MESSAGE = 1024;

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
    // The path holds the client's own keys: bounded, so an answer (and its log line) stays short.
    const at = issue.instancePath ? truncate(printable(issue.instancePath.replace(/^\//, '').replaceAll('/', '.')), 120) : '(body)';
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

export const reviews: FastifyPluginCallback<ReviewsOptions> = (app, options, done) => {
  const { config, namespaces, metrics, limits, bodyLimit, clock } = options;

  // The schema is TypeBox (JSON Schema) checked by TypeBox's compiler: no coercion, no defaults.
  app.setValidatorCompiler(({ schema }) => {
    const validator = Compile(schema as Parameters<typeof Compile>[0]);
    return (data: unknown) =>
      validator.Check(data)
        ? { value: data }
        : {
            error: validator.Errors(data) as unknown as FastifySchemaValidationError[],
          };
  });
  app.setSchemaErrorFormatter((errors) => new Error(describeSchemaIssues(errors as SchemaIssue[])));

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
    let message =
      error.validation !== undefined
        ? error.message
        : error.code === 'TWOKEY_REVIEW_TOO_LARGE_PARSED'
          ? `${error.message} (its JSON holds too many objects and arrays for its size)`
          : code === 413
            ? `the body is larger than the server's limit of ${bodyLimit} bytes`
            : error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE'
              ? 'the body must be an AdmissionReview v1 sent as application/json'
              : `the body is not an AdmissionReview v1: ${error.message}`;
    message = truncate(message, MAX_ERROR_MESSAGE);
    metrics.badRequests.inc({
      reason: bodyError ? (status === 413 ? 'too-large' : 'not-a-review') : 'other',
    });
    request.log.warn({ status, error: message }, 'bad admission request');
    return reply.code(status).send(statusBody(status, status === 413 ? 'RequestEntityTooLarge' : 'BadRequest', message));
  });

  // Unknown paths are answered here, so that a body sent to one is read within the same limits.
  app.setNotFoundHandler((request, reply) => {
    reply
      .code(404)
      .send(statusBody(404, 'NotFound', `no route ${request.method} ${request.url.split('?')[0]}; reviews go to POST /validate`));
  });

  const judge = (route: '/validate' | '/validate/critical') => {
    const forceCritical = route === '/validate/critical';
    return async (request: FastifyRequest<{ Body: AdmissionReviewWire }>, reply: FastifyReply) => {
      const started = performance.now();
      const {
        request: admission,
        decision,
        response,
      } = await judgeReview(request.body, {
        snapshot: config.current(),
        namespaces,
        forceCritical,
        now: clock(),
        ...(options.offThread ? { offThread: options.offThread } : {}),
      });
      const durationMs = performance.now() - started;
      const verdictLabel = decision.allowed ? 'admitted' : 'refused';
      metrics.reviews.inc({
        verdict: verdictLabel,
        action: decision.action ?? 'none',
        dry_run: String(admission.dryRun),
        route,
      });
      metrics.decisionSeconds.observe({ verdict: verdictLabel }, durationMs / 1000);
      const notCounted = decision.approvals.filter((a) => a.status !== 'counted');
      for (const report of notCounted) metrics.notCounted.inc({ code: report.code ?? 'other' });
      // A kid the issuer's JWKS lacks may be a rotation: fetch that issuer's keys again, in the background.
      for (const issuer of new Set(notCounted.flatMap((a) => (a.unknownKidOf ? [a.unknownKidOf] : [])))) {
        config.requestRefresh?.(issuer);
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
          action: decision.action,
          verdict: verdictLabel,
          summary: decision.summary,
          reasons: notCounted.length ? loggedReasons(notCounted) : undefined,
          change: decision.change,
          approvers: decision.approvers,
          digest: decision.digest,
          plan: decision.aspects.length === 1 ? decision.aspects[0]?.plans?.join(',') : undefined,
          mode: decision.wouldRefuse !== undefined ? 'warn' : undefined,
          breakGlass: decision.breakGlass
            ? { status: decision.breakGlass.status, code: decision.breakGlass.code, incident: decision.breakGlass.incident }
            : undefined,
          // A request gated as several actions: each one's digest, change and approvers.
          aspects: decision.aspects.length > 1 ? decision.aspects : undefined,
          durationMs: Math.round(durationMs * 1000) / 1000,
        },
        'admission decision',
      );
      // Warn mode and break-glass are loud: a line of their own, at warn and error level.
      const loud = () => ({
        uid: admission.uid,
        user: admission.user.username,
        resource: qualifiedResource(admission.resource),
        namespace: admission.namespace || undefined,
        name: objectName(admission) || undefined,
        dryRun: admission.dryRun,
        action: decision.action,
      });
      if (decision.wouldRefuse !== undefined) {
        const reason = wouldRefuseReason(decision);
        metrics.wouldRefuse.inc({ action: decision.action ?? 'none', reason, dry_run: String(admission.dryRun) });
        request.log.warn(
          { ...loud(), mode: 'warn', scope: decision.wouldRefuse, reason, summary: decision.summary },
          'would refuse (warn mode)',
        );
      } else if (decision.allowed && decision.breakGlass?.status === 'counted') {
        const { incident, approver, issuedAt, reviewBy } = decision.breakGlass;
        metrics.breakGlass.inc({ action: decision.action ?? 'none', dry_run: String(admission.dryRun) });
        request.log.error({ ...loud(), incident, approver, issuedAt, reviewBy, summary: decision.summary }, 'break-glass admission');
      }
      if (options.onDecision) {
        const notify = options.onDecision;
        reply.raw.once('finish', () => setImmediate(() => notify(admission, decision)));
      }
      return reply.send(response);
    };
  };

  const route = { schema: { body: AdmissionReviewSchema } };
  app.post('/validate', route, judge('/validate'));
  app.post('/validate/critical', route, judge('/validate/critical'));
  done();
};
