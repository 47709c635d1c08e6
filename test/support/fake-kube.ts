/**
 * A Kubernetes API server for tests, faithful for the calls twokey makes: HTTPS with a CA and a
 * bearer token; list with resourceVersion; watch streams with ADDED/MODIFIED/DELETED/BOOKMARK
 * events and ERROR 410 Gone for expired resource versions; Event creation and patching; server-
 * side apply and delete with dryRun=All running the validating webhook as kube-apiserver does
 * (routing like the chart: namespaces labelled critical to /validate/critical) and wording its
 * refusal as kube-apiserver does (docs/kube-apiserver.md, "The response").
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createCertificateAuthority, issueServingCertificate } from '../../src/dev/certificates.ts';
import { isJsonObject, type JsonObject } from '../../src/json.ts';
import type { Operation } from '../../src/kubernetes/admission.ts';
import { hasCriticalLabel, readMeta, WORKLOADS } from '../../src/kubernetes/objects.ts';
import { buildAdmissionReview } from '../../src/kubernetes/review-builder.ts';
import { callWebhook, type WebhookEndpoint } from '../../src/kubernetes/webhook-client.ts';

type Row = { type: 'ADDED' | 'MODIFIED' | 'DELETED'; rv: number; object: JsonObject };

export interface Webhook {
  /** Base URL of a twokey server, e.g. https://127.0.0.1:1234 */
  readonly base: string;
  readonly caBundle: string;
  readonly serverName: string;
}

const TOKEN = 'fake-token-for-tests';
const USER = 'kubernetes-admin';

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

/** A few defaults the apiserver fills in, so the server-side digest differs from the file's. */
export function applyDefaults(object: JsonObject): JsonObject {
  const copy = structuredClone(object);
  const spec = isJsonObject(copy.spec) ? copy.spec : {};
  if (copy.kind === 'Deployment') {
    spec.revisionHistoryLimit ??= 10;
    spec.progressDeadlineSeconds ??= 600;
    spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } };
  }
  const template = isJsonObject(spec.template) ? spec.template : undefined;
  const podSpec = template && isJsonObject(template.spec) ? template.spec : undefined;
  if (podSpec) {
    podSpec.restartPolicy ??= 'Always';
    podSpec.dnsPolicy ??= 'ClusterFirst';
    podSpec.terminationGracePeriodSeconds ??= 30;
  }
  return copy;
}

export class FakeKube {
  readonly namespaces = new Map<string, JsonObject>();
  readonly objects = new Map<string, JsonObject>();
  readonly events: JsonObject[] = [];
  readonly requests: string[] = [];
  #log: Row[] = [];
  #rv = 100;
  /** Watches from a resourceVersion at or below this get 410 Gone. */
  #compactedRv = 0;
  #server: Server | undefined;
  #ca = '';
  #watches = new Set<{ res: ServerResponse; socket: Socket }>();
  webhook: Webhook | undefined;
  /** Warnings another admission webhook adds to every answer about a critical object (to play a rogue one). */
  otherWarnings: string[] = [];
  /** Delay before answering Event writes, to play a slow API. */
  eventDelayMs = 0;
  /** Answer the next list with this HTTP status (to play an API that is down). */
  failLists = 0;
  /** The loopback address to listen on: 127.0.0.1, or ::1 to play an IPv6 cluster. */
  readonly #host: string;

  constructor(options: { host?: '127.0.0.1' | '::1' } = {}) {
    this.#host = options.host ?? '127.0.0.1';
  }

  async start(): Promise<void> {
    const ca = await createCertificateAuthority('fake kube CA', 1);
    const serving = await issueServingCertificate(ca, { dns: ['localhost'], ips: ['127.0.0.1', '::1'] }, 1);
    this.#ca = ca.certPem;
    this.#server = createServer({ key: serving.keyPem, cert: serving.certPem }, (req, res) => {
      this.#handle(req, res).catch((error: unknown) => {
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify(status(500, 'InternalError', String(error))));
      });
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, this.#host, resolve));
  }

  async stop(): Promise<void> {
    this.dropWatches();
    await new Promise<void>((resolve) => {
      this.#server?.closeAllConnections();
      this.#server?.close(() => resolve());
    });
  }

  get url(): string {
    const address = this.#server?.address() as AddressInfo | undefined;
    return `https://${this.#host.includes(':') ? `[${this.#host}]` : this.#host}:${address?.port ?? 0}`;
  }

  async writeKubeconfig(path: string, namespace = 'default'): Promise<string> {
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'fake', cluster: { server: this.url, 'certificate-authority-data': Buffer.from(this.#ca).toString('base64') } }],
      users: [{ name: 'admin', user: { token: TOKEN } }],
      contexts: [{ name: 'fake', context: { cluster: 'fake', user: 'admin', namespace } }],
      'current-context': 'fake',
    };
    await writeFile(path, JSON.stringify(config));
    return path;
  }

  // ---- state changes, as a controller or kubectl would make them ----

  /** Creates or replaces a namespace; `deleting` marks its deletion as begun (deletionTimestamp set). */
  putNamespace(name: string, labels: Record<string, string> = {}, options: { deleting?: boolean } = {}): JsonObject {
    const existing = this.namespaces.get(name);
    const object: JsonObject = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name,
        uid: existing ? readMeta(existing).uid : randomUUID(),
        resourceVersion: String(++this.#rv),
        creationTimestamp: '2026-11-01T00:00:00Z',
        ...(options.deleting ? { deletionTimestamp: '2026-11-27T09:00:00Z' } : {}),
        labels: { 'kubernetes.io/metadata.name': name, ...labels },
      },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    };
    this.namespaces.set(name, object);
    this.#emit({ type: existing ? 'MODIFIED' : 'ADDED', rv: this.#rv, object });
    return object;
  }

  deleteNamespace(name: string): void {
    const existing = this.namespaces.get(name);
    if (!existing) return;
    this.namespaces.delete(name);
    const object = { ...existing, metadata: { ...(existing.metadata as JsonObject), resourceVersion: String(++this.#rv) } };
    this.#emit({ type: 'DELETED', rv: this.#rv, object });
  }

  putObject(object: JsonObject): JsonObject {
    const stored = applyDefaults(object);
    const meta = stored.metadata as JsonObject;
    const key = this.#key(stored.kind as string, meta.namespace as string, meta.name as string);
    const existing = this.objects.get(key);
    meta.uid = existing ? readMeta(existing).uid : (meta.uid ?? randomUUID());
    meta.resourceVersion = String(++this.#rv);
    meta.creationTimestamp ??= '2026-11-01T00:00:00Z';
    this.objects.set(key, stored);
    return stored;
  }

  /** Ends every open watch abruptly, as a restarted apiserver or a broken connection would. */
  dropWatches(): void {
    for (const watch of this.#watches) watch.socket.destroy();
    this.#watches.clear();
  }

  /** Forgets history (compaction): open watches get ERROR 410 Gone and must relist. */
  expireWatches(): void {
    this.#compactedRv = this.#rv;
    this.#log = [];
    for (const watch of this.#watches) this.#gone(watch.res);
    this.#watches.clear();
  }

  /** Sends a BOOKMARK to open watches. */
  bookmark(): void {
    for (const watch of this.#watches) {
      watch.res.write(
        `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Namespace', apiVersion: 'v1', metadata: { resourceVersion: String(this.#rv) } } })}\n`,
      );
    }
  }

  get openWatches(): number {
    return this.#watches.size;
  }

  // ---- the API ----

  #key(kind: string, namespace: string, name: string): string {
    return `${kind}/${namespace}/${name}`;
  }

  #emit(row: Row): void {
    this.#log.push(row);
    for (const watch of this.#watches) watch.res.write(`${JSON.stringify({ type: row.type, object: row.object })}\n`);
  }

  #gone(res: ServerResponse): void {
    res.end(`${JSON.stringify({ type: 'ERROR', object: status(410, 'Expired', `too old resource version: ${this.#compactedRv}`) })}\n`);
  }

  async #body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    return text ? JSON.parse(text) : undefined;
  }

  #send(res: ServerResponse, code: number, body: unknown, warnings: readonly string[] = []): void {
    // As kube-apiserver passes an admission webhook's warnings on: one Warning header each.
    const warning = warnings.map((w) => `299 - "${w.replace(/["\\]/g, '\\$&')}"`);
    if (warning.length > 0) res.setHeader('warning', warning);
    res.writeHead(code, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://fake');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return this.#send(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
    const path = url.pathname;
    const method = req.method ?? 'GET';

    if (path === '/api/v1/namespaces' && method === 'GET') {
      if (url.searchParams.get('watch') === 'true') return this.#watch(url, req, res);
      if (this.failLists > 0) {
        this.failLists -= 1;
        return this.#send(res, 503, status(503, 'ServiceUnavailable', 'the server is currently unable to handle the request'));
      }
      return this.#send(res, 200, {
        kind: 'NamespaceList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.#rv) },
        items: [...this.namespaces.values()].map(({ apiVersion: _a, kind: _k, ...item }) => item),
      });
    }
    let match = /^\/api\/v1\/namespaces\/([^/]+)$/.exec(path);
    if (match && method === 'GET') {
      const ns = this.namespaces.get(decodeURIComponent(match[1] as string));
      return ns ? this.#send(res, 200, ns) : this.#send(res, 404, status(404, 'NotFound', `namespaces "${match[1]}" not found`));
    }
    if (path === '/api/v1/events' && method === 'GET') {
      const reason = /^reason=(.*)$/.exec(url.searchParams.get('fieldSelector') ?? '')?.[1];
      return this.#send(res, 200, {
        kind: 'EventList',
        apiVersion: 'v1',
        items: this.events.filter((e) => reason === undefined || e.reason === reason),
      });
    }
    match = /^\/api\/v1\/namespaces\/([^/]+)\/events(?:\/([^/]+))?$/.exec(path);
    if (match) return this.#eventsApi(req, res, method, decodeURIComponent(match[1] as string), match[2]);
    if (path === '/apis/authentication.k8s.io/v1/selfsubjectreviews' && method === 'POST') {
      return this.#send(res, 201, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'SelfSubjectReview',
        status: { userInfo: { username: USER, groups: ['system:masters', 'system:authenticated'] } },
      });
    }
    for (const w of WORKLOADS) {
      const base = `/apis/${w.group}/${w.version}`;
      if (path === `${base}/${w.resource}` && method === 'GET') {
        const items = [...this.objects.values()].filter((o) => o.kind === w.kind).map(({ apiVersion: _a, kind: _k, ...item }) => item);
        return this.#send(res, 200, {
          kind: `${w.kind}List`,
          apiVersion: `${w.group}/${w.version}`,
          metadata: { resourceVersion: String(this.#rv) },
          items,
        });
      }
      match = new RegExp(`^${base}/namespaces/([^/]+)/${w.resource}/([^/]+)$`).exec(path);
      if (match)
        return this.#objectApi(
          req,
          res,
          method,
          url,
          w.kind,
          `${w.group}/${w.version}`,
          decodeURIComponent(match[1] as string),
          decodeURIComponent(match[2] as string),
        );
    }
    return this.#send(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
  }

  #watch(url: URL, req: IncomingMessage, res: ServerResponse): void {
    const from = Number(url.searchParams.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    res.flushHeaders();
    if (from > 0 && from <= this.#compactedRv) {
      this.#gone(res);
      return;
    }
    for (const row of this.#log) if (row.rv > from) res.write(`${JSON.stringify({ type: row.type, object: row.object })}\n`);
    const watch = { res, socket: req.socket };
    this.#watches.add(watch);
    res.on('close', () => this.#watches.delete(watch));
  }

  async #eventsApi(req: IncomingMessage, res: ServerResponse, method: string, namespace: string, name: string | undefined): Promise<void> {
    const body = await this.#body(req);
    if (this.eventDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.eventDelayMs));
    if (!this.namespaces.has(namespace)) return this.#send(res, 404, status(404, 'NotFound', `namespaces "${namespace}" not found`));
    if (method === 'POST' && !name && isJsonObject(body)) {
      const meta = isJsonObject(body.metadata) ? body.metadata : {};
      const event = {
        ...body,
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { ...meta, name: `${String(meta.generateName ?? 'event.')}${randomUUID().slice(0, 8)}`, namespace, uid: randomUUID() },
      };
      this.events.push(event);
      return this.#send(res, 201, event);
    }
    if (method === 'PATCH' && name && isJsonObject(body)) {
      const event = this.events.find((e) => (e.metadata as JsonObject).name === name);
      if (!event) return this.#send(res, 404, status(404, 'NotFound', `events "${name}" not found`));
      Object.assign(event, body);
      return this.#send(res, 200, event);
    }
    return this.#send(res, 405, status(405, 'MethodNotAllowed', 'method not allowed'));
  }

  async #objectApi(
    req: IncomingMessage,
    res: ServerResponse,
    method: string,
    url: URL,
    kind: string,
    apiVersion: string,
    namespace: string,
    name: string,
  ): Promise<void> {
    const key = this.#key(kind, namespace, name);
    const existing = this.objects.get(key);
    const dryRun = url.searchParams.get('dryRun') === 'All';
    if (method === 'GET')
      return existing
        ? this.#send(res, 200, existing)
        : this.#send(res, 404, status(404, 'NotFound', `${kind.toLowerCase()}s.apps "${name}" not found`));
    if (!this.namespaces.has(namespace)) return this.#send(res, 404, status(404, 'NotFound', `namespaces "${namespace}" not found`));
    if (method === 'PATCH' && req.headers['content-type'] === 'application/apply-patch+yaml') {
      if (!url.searchParams.get('fieldManager'))
        return this.#send(res, 400, status(400, 'BadRequest', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value'));
      const patch = (await this.#body(req)) as JsonObject;
      const merged = applyDefaults({ ...patch, apiVersion, kind });
      const meta = (merged.metadata ?? {}) as JsonObject;
      merged.metadata = {
        ...meta,
        namespace,
        name,
        uid: existing ? readMeta(existing).uid : randomUUID(),
        generation: 1,
        creationTimestamp: '2026-11-27T00:00:00Z',
      };
      const { denial, warnings } = await this.#admit(existing ? 'UPDATE' : 'CREATE', merged, existing ?? null, dryRun);
      if (denial) return this.#send(res, denial.code, denial, warnings);
      if (!dryRun) this.putObject(merged);
      return this.#send(res, existing ? 200 : 201, merged, warnings);
    }
    if (method === 'DELETE') {
      if (!existing) return this.#send(res, 404, status(404, 'NotFound', `not found`));
      const { denial } = await this.#admit('DELETE', null, existing, dryRun);
      if (denial) return this.#send(res, denial.code, denial);
      if (!dryRun) this.objects.delete(key);
      return this.#send(res, 200, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success' });
    }
    return this.#send(res, 405, status(405, 'MethodNotAllowed', 'method not allowed'));
  }

  /** Runs the validating webhook like kube-apiserver with failurePolicy Fail: the Status to answer when refused, and its warnings. */
  async #admit(operation: Operation, object: JsonObject | null, oldObject: JsonObject | null, dryRun: boolean) {
    if (!this.webhook) return { warnings: [] };
    const subject = (object ?? oldObject) as JsonObject;
    const meta = readMeta(subject);
    const nsLabels = this.namespaces.get(meta.namespace);
    const namespaceCritical = nsLabels !== undefined && hasCriticalLabel(readMeta(nsLabels).labels);
    const objectLabelled = [object, oldObject].some((o) => o !== null && hasCriticalLabel(readMeta(o).labels));
    if (!namespaceCritical && !objectLabelled) return { warnings: [] };
    const name = namespaceCritical ? 'workloads.twokey.dev' : 'labeled-workloads.twokey.dev';
    const endpoint: WebhookEndpoint = {
      url: `${this.webhook.base}${namespaceCritical ? '/validate/critical' : '/validate'}`,
      serverName: this.webhook.serverName,
      caBundle: this.webhook.caBundle,
      webhookName: name,
    };
    const outcome = await callWebhook(
      endpoint,
      buildAdmissionReview({ operation, object, oldObject, username: USER, groups: ['system:masters'], dryRun }),
    );
    if (outcome.kind === 'failed')
      return { denial: status(500, 'InternalError', `Internal error occurred: ${outcome.message}`), warnings: [] };
    const warnings = [...outcome.warnings, ...this.otherWarnings];
    if (outcome.kind === 'allowed') return { warnings };
    return { denial: { ...status(outcome.code, outcome.reason, outcome.message), reason: outcome.reason }, warnings };
  }
}
