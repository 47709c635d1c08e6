/**
 * What the CLI asks a cluster: the live object, a server-side dry run of a change (whose
 * refusal by twokey names the digest the webhook computed), who the caller is, and lists of
 * workloads and namespaces for `twokey scan`.
 */
import { TwokeyError } from '../errors.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { type GroupResource, NAMESPACES, typeOfResource, WORKLOADS } from '../kubernetes/objects.ts';
import { type KubeConfigOptions, loadKubeConfig } from './kubeconfig.ts';
import { KubeRest, listItems, type RestResponse, resourcePath, statusMessage } from './rest.ts';

/**
 * The field manager a dry run applies as, unless told otherwise: kubectl apply --server-side's.
 * Server-side apply keeps fields other managers own, so the dry run predicts a real apply only
 * when it applies as the same manager.
 */
export const DEFAULT_FIELD_MANAGER = 'kubectl';

export type DryRunOutcome =
  | { readonly kind: 'admitted'; readonly object: JsonObject; readonly warnings: readonly string[] }
  | { readonly kind: 'refused'; readonly code: number; readonly message: string; readonly byTwokey: boolean };

function refusal(response: RestResponse): DryRunOutcome {
  const message = statusMessage(response);
  return { kind: 'refused', code: response.status, message, byTwokey: /denied the request: twokey: /.test(message) };
}

export class ClusterClient {
  readonly rest: KubeRest;

  constructor(rest: KubeRest) {
    this.rest = rest;
  }

  static connect(options: KubeConfigOptions): { client: ClusterClient; namespace: string } {
    const kc = loadKubeConfig(options);
    const context = kc.getContextObject(kc.getCurrentContext());
    return { client: new ClusterClient(new KubeRest(kc)), namespace: context?.namespace ?? 'default' };
  }

  #unexpected(what: string, response: RestResponse): TwokeyError {
    return new TwokeyError('ERR_CLUSTER', `${what}: ${statusMessage(response)} (HTTP ${response.status})`);
  }

  /** The live object, or undefined when it does not exist. */
  async read(gr: GroupResource, namespace: string, name: string): Promise<JsonObject | undefined> {
    const response = await this.rest.call('GET', resourcePath(gr, namespace, name));
    if (response.status === 404) return undefined;
    if (response.status !== 200 || !isJsonObject(response.body))
      throw this.#unexpected(`cannot read ${gr.resource} ${namespace}/${name}`, response);
    return response.body;
  }

  /** Server-side apply with dryRun=All, as `fieldManager`: every admission step runs, nothing is stored. */
  async dryRunApply(
    gr: GroupResource,
    namespace: string,
    name: string,
    object: JsonObject,
    fieldManager = DEFAULT_FIELD_MANAGER,
  ): Promise<DryRunOutcome> {
    return this.dryRunApplyAt(resourcePath(gr, namespace, name), `${gr.resource} ${namespace}/${name}`, object, fieldManager);
  }

  /** The same, for the object at an API path (any kind the server serves). */
  async dryRunApplyAt(path: string, what: string, object: JsonObject, fieldManager = DEFAULT_FIELD_MANAGER): Promise<DryRunOutcome> {
    const response = await this.rest.call('PATCH', path, {
      query: { dryRun: 'All', fieldManager, force: 'true' },
      body: object,
      contentType: 'application/apply-patch+yaml',
    });
    if (response.status >= 200 && response.status < 300 && isJsonObject(response.body)) {
      return { kind: 'admitted', object: response.body, warnings: response.warnings ?? [] };
    }
    if (response.status >= 400 && response.status < 500 && response.status !== 404) return refusal(response);
    throw this.#unexpected(`dry run of ${what} failed`, response);
  }

  /** The object at an API path, or undefined when it does not exist. */
  async readAt(path: string, what: string): Promise<JsonObject | undefined> {
    const response = await this.rest.call('GET', path);
    if (response.status === 404) return undefined;
    if (response.status !== 200 || !isJsonObject(response.body)) throw this.#unexpected(`cannot read ${what}`, response);
    return response.body;
  }

  /** Lists a resource in all namespaces; items get their apiVersion and kind back. */
  async list(gr: GroupResource): Promise<JsonObject[]> {
    const type = typeOfResource(gr);
    if (!type) throw new TypeError(`unknown resource ${gr.resource}`);
    const response = await this.rest.call('GET', resourcePath(gr, ''));
    if (response.status !== 200) throw this.#unexpected(`cannot list ${gr.resource}`, response);
    const apiVersion = type.group ? `${type.group}/${type.version}` : type.version;
    return listItems(response).map((item) => ({ apiVersion, kind: type.kind, ...item }));
  }

  async listWorkloads(): Promise<Array<{ resource: GroupResource; object: JsonObject }>> {
    const lists = await Promise.all(WORKLOADS.map(async (w) => ({ w, items: await this.list(w) })));
    return lists.flatMap(({ w, items }) => items.map((object) => ({ resource: { group: w.group, resource: w.resource }, object })));
  }

  async listNamespaces(): Promise<JsonObject[]> {
    return this.list(NAMESPACES);
  }

  /** Events of every namespace with this reason (Events live about an hour: kube-apiserver's --event-ttl). */
  async listEvents(reason: string): Promise<JsonObject[]> {
    const response = await this.rest.call('GET', '/api/v1/events', { query: { fieldSelector: `reason=${reason}` } });
    if (response.status !== 200) throw this.#unexpected(`cannot list Events with reason ${reason}`, response);
    return listItems(response);
  }

  /** The user name the API sees for these credentials (SelfSubjectReview), if the server tells. */
  async whoAmI(): Promise<string | undefined> {
    try {
      const response = await this.rest.call('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
        timeoutMs: 10_000,
      });
      const status = isJsonObject(response.body) ? response.body.status : undefined;
      const userInfo = isJsonObject(status) ? status.userInfo : undefined;
      return isJsonObject(userInfo) && typeof userInfo.username === 'string' ? userInfo.username : undefined;
    } catch {
      return undefined;
    }
  }
}
