/**
 * Raw JSON calls to the Kubernetes API with the kubeconfig's credentials and TLS. twokey digests
 * objects exactly as the API returns them, so it reads them as JSON rather than through typed
 * models that would convert or drop fields.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { urlToHttpOptions } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { TwokeyError } from '../errors.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { type GroupResource, typeOfResource } from '../kubernetes/objects.ts';

export interface RestResponse {
  readonly status: number;
  readonly body: unknown;
  /** The texts of the response's Warning headers (RFC 7234 warn-text), as admission webhooks send them. */
  readonly warnings?: readonly string[];
}

const WARNING = /\d{3} \S+ "((?:[^"\\]|\\.)*)"/g;

/** The warn-texts of Warning header values (`299 - "text"`), unescaped. */
export function warningTexts(values: readonly string[]): string[] {
  return values.flatMap((value) => [...value.matchAll(WARNING)].map((m) => (m[1] as string).replace(/\\(.)/g, '$1')));
}

export interface RestRequest {
  readonly query?: Record<string, string>;
  readonly body?: unknown;
  readonly contentType?: string;
  readonly timeoutMs?: number;
}

/** A Status from the API, with the message a person reads. */
export function statusMessage(response: RestResponse): string {
  if (isJsonObject(response.body) && typeof response.body.message === 'string') return response.body.message;
  return `HTTP ${response.status}`;
}

export class KubeRest {
  readonly #kc: KubeConfig;
  readonly #server: URL;

  constructor(kc: KubeConfig) {
    this.#kc = kc;
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new TwokeyError('ERR_CLUSTER', 'the kubeconfig names no current cluster');
    this.#server = new URL(cluster.server);
  }

  get server(): string {
    return this.#server.href;
  }

  async call(method: string, path: string, options: RestRequest = {}): Promise<RestResponse> {
    const url = new URL(this.#server.href.replace(/\/$/, '') + path);
    for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value);
    const payload = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    const requestOptions: RequestOptions = {
      method,
      // Without the brackets an IPv6 literal keeps in a URL (the in-cluster address on IPv6 clusters).
      hostname: urlToHttpOptions(url).hostname,
      port: url.port,
      path: `${url.pathname}${url.search}`,
      headers: {
        accept: 'application/json',
        ...(payload !== undefined
          ? { 'content-type': options.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(payload)) }
          : {}),
      },
      timeout: options.timeoutMs ?? 30_000,
    };
    await this.#kc.applyToHTTPSOptions(requestOptions);
    const isHttps = url.protocol === 'https:';
    if (!isHttps) delete requestOptions.agent;
    return new Promise<RestResponse>((resolve, reject) => {
      const req = (isHttps ? httpsRequest : httpRequest)(requestOptions, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            // Keep the text: a proxy or a broken server answered.
          }
          const values: string[] = [];
          for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
            if (res.rawHeaders[i]?.toLowerCase() === 'warning') values.push(res.rawHeaders[i + 1] as string);
          }
          const warnings = warningTexts(values);
          resolve({ status: res.statusCode ?? 0, body, ...(warnings.length > 0 ? { warnings } : {}) });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} in ${(options.timeoutMs ?? 30_000) / 1000}s`)));
      req.on('error', (error) =>
        reject(new TwokeyError('ERR_CLUSTER', `${method} ${url.pathname} on ${url.host} failed: ${error.message}`, { cause: error })),
      );
      req.end(payload);
    });
  }
}

/** The API path of a gated resource: the collection, or one object. */
export function resourcePath(gr: GroupResource, namespace: string, name?: string): string {
  const type = typeOfResource(gr);
  if (!type) throw new TypeError(`${gr.resource}.${gr.group} is not a resource twokey knows`);
  const prefix = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const scope = type.resource === 'namespaces' || namespace === '' ? '' : `/namespaces/${encodeURIComponent(namespace)}`;
  return `${prefix}${scope}/${type.resource}${name ? `/${encodeURIComponent(name)}` : ''}`;
}

export function listItems(response: RestResponse): JsonObject[] {
  if (!isJsonObject(response.body) || !Array.isArray(response.body.items)) return [];
  return response.body.items.filter(isJsonObject);
}
