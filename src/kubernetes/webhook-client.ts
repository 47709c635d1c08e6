/**
 * Calls a validating webhook exactly as kube-apiserver does, and reports the outcome as the
 * apiserver would pass it to kubectl: the request shape, headers, `?timeout=`, TLS checked
 * against a CA bundle for the service's DNS name, HTTP/1.1, and the response checks in the
 * apiserver's order (docs/kube-apiserver.md, "The call" and "The response"). The demo and the
 * end-to-end tests use it to stand in for a cluster.
 */
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { gunzipSync } from 'node:zlib';
import { isJsonObject } from '../json.ts';

export interface WebhookEndpoint {
  /** Where to connect, e.g. https://127.0.0.1:8443/validate */
  readonly url: string;
  /** The name the certificate must carry: `<service>.<namespace>.svc` for service references. */
  readonly serverName: string;
  readonly caBundle: string;
  /** The webhook's name in the ValidatingWebhookConfiguration, e.g. workloads.twokey.dev */
  readonly webhookName: string;
  readonly timeoutSeconds?: number;
}

export type WebhookOutcome =
  | {
      readonly kind: 'allowed';
      readonly warnings: string[];
      readonly auditAnnotations: Record<string, string>;
    }
  | {
      readonly kind: 'denied';
      readonly code: number;
      readonly reason: string;
      readonly message: string;
      readonly warnings: string[];
    }
  | { readonly kind: 'failed'; readonly message: string };

const CONTROL = /[\p{Cc}]/u;

/** Warnings as the apiserver keeps them (docs/kube-apiserver.md, "Warnings"): no empty, duplicate, control-character or invalid ones; runes capped. */
export function keptWarnings(raw: unknown): string[] {
  if (!Array.isArray(raw)) return [];
  const seen = new Set<string>();
  const kept: string[] = [];
  for (const w of raw) {
    if (typeof w !== 'string' || w === '' || CONTROL.test(w) || !w.isWellFormed() || seen.has(w)) continue;
    seen.add(w);
    kept.push(w);
  }
  const total = kept.reduce((n, w) => n + [...w].length, 0);
  return total <= 4096 ? kept : kept.map((w) => [...w].slice(0, 256).join(''));
}

/** Validates a webhook's answer the way kube-apiserver does (VerifyAdmissionResponse, v1). */
export function interpretResponse(uid: string, webhookName: string, body: unknown): WebhookOutcome {
  const invalid = (why: string): WebhookOutcome => ({
    kind: 'failed',
    message: `failed calling webhook "${webhookName}": received invalid webhook response: ${why}`,
  });
  if (!isJsonObject(body)) return invalid("couldn't get version/kind; json parse error");
  const response = body.response;
  if (!isJsonObject(response)) return invalid('webhook response was absent');
  if (response.uid !== uid) return invalid(`expected response.uid="${uid}", got "${String(response.uid ?? '')}"`);
  if (body.apiVersion !== 'admission.k8s.io/v1' || body.kind !== 'AdmissionReview') {
    const gv = typeof body.apiVersion === 'string' ? body.apiVersion : '/';
    return invalid(`expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got ${gv}, Kind=${String(body.kind ?? '')}`);
  }
  if (response.patch !== undefined) return invalid('validating webhook may not return response.patch');
  if (response.patchType !== undefined) return invalid('validating webhook may not return response.patchType');
  const warnings = keptWarnings(response.warnings);
  if (response.allowed === true) {
    const audit = isJsonObject(response.auditAnnotations) ? (response.auditAnnotations as Record<string, string>) : {};
    return { kind: 'allowed', warnings, auditAnnotations: audit };
  }
  const status = isJsonObject(response.status) ? response.status : {};
  const code = typeof status.code === 'number' && status.code >= 400 ? status.code : 400;
  const reason = typeof status.reason === 'string' ? status.reason : '';
  const base = `admission webhook "${webhookName}" denied the request`;
  const message =
    typeof status.message === 'string' && status.message !== ''
      ? `${base}: ${status.message}`
      : reason !== ''
        ? `${base}: ${reason}`
        : `${base} without explanation`;
  return { kind: 'denied', code, reason, message, warnings };
}

export async function callWebhook(endpoint: WebhookEndpoint, review: { request: { uid: string } }): Promise<WebhookOutcome> {
  const url = new URL(endpoint.url);
  const timeoutSeconds = endpoint.timeoutSeconds ?? 10;
  const path = `${url.pathname}?timeout=${timeoutSeconds}s`;
  const failedCalling = (why: string): WebhookOutcome => ({
    kind: 'failed',
    message: `failed calling webhook "${endpoint.webhookName}": failed to call webhook: Post "https://${endpoint.serverName}:${url.port || 443}${path}": ${why}`,
  });
  const body = `${JSON.stringify(review)}\n`;
  return new Promise<WebhookOutcome>((resolve) => {
    const options: RequestOptions & ConnectionOptions = {
      method: 'POST',
      host: url.hostname,
      port: Number(url.port || 443),
      path,
      servername: endpoint.serverName,
      ca: endpoint.caBundle,
      ALPNProtocols: ['http/1.1'],
      agent: false,
      timeout: timeoutSeconds * 1000,
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json, */*',
        'User-Agent': 'kube-apiserver-admission',
        'Accept-Encoding': 'gzip',
        Host: `${endpoint.serverName}:${url.port || 443}`,
        'Content-Length': String(Buffer.byteLength(body)),
      },
    };
    const req = httpsRequest(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (error) => resolve(failedCalling(error.message)));
      res.on('end', () => {
        let raw = Buffer.concat(chunks);
        if (res.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          resolve(
            failedCalling(`an error on the server ("${raw.toString('utf8').slice(0, 2048)}") has prevented the request from succeeding`),
          );
          return;
        }
        if (raw.length === 0) {
          resolve(failedCalling(`0-length response with status code: ${status} and content type: ${res.headers['content-type'] ?? ''}`));
          return;
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw.toString('utf8'));
        } catch (error) {
          resolve({
            kind: 'failed',
            message: `failed calling webhook "${endpoint.webhookName}": received invalid webhook response: couldn't get version/kind; json parse error: ${(error as Error).message}`,
          });
          return;
        }
        resolve(interpretResponse(review.request.uid, endpoint.webhookName, parsed));
      });
    });
    req.on('timeout', () => req.destroy(new Error('context deadline exceeded')));
    req.on('error', (error: NodeJS.ErrnoException) =>
      // Worded as Go's dialer words it, which is what kube-apiserver prints.
      resolve(
        failedCalling(
          error.code === 'ECONNREFUSED' ? `dial tcp ${url.hostname}:${options.port}: connect: connection refused` : error.message,
        ),
      ),
    );
    req.end(body);
  });
}

/** The lines kubectl prints for an outcome (docs/kube-apiserver.md, "What kubectl prints"), warnings first. */
export function kubectlLines(outcome: WebhookOutcome, success: string, source?: { verb: string; file: string }): string[] {
  const prefix = source ? `error when ${source.verb} "${source.file}": ` : '';
  switch (outcome.kind) {
    case 'allowed':
      return [...outcome.warnings.map((w) => `Warning: ${w}`), success];
    case 'denied':
      return [
        ...outcome.warnings.map((w) => `Warning: ${w}`),
        `Error from server${outcome.reason ? ` (${outcome.reason})` : ''}: ${prefix}${outcome.message}`,
      ];
    case 'failed':
      return [`Error from server (InternalError): ${prefix}Internal error occurred: ${outcome.message}`];
  }
}
