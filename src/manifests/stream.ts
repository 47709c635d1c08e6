/**
 * A stream of manifests (YAML or JSON documents, as `helm template` or `kustomize build` write
 * them) read as Kubernetes objects, each with where it came from. Namespaced objects that name no
 * namespace get the one given, as `kubectl apply -n` does; with none given they are a problem, not
 * silently put in "default".
 */
import { parseAllDocuments } from 'yaml';
import { isJsonObject, type JsonObject } from '../json.ts';
import { NAMESPACES, qualifiedResource, resourceForKind } from '../kubernetes/objects.ts';

export interface StreamObject {
  /** The document's index in the stream, counting empty documents. */
  readonly document: number;
  /** For messages: "rendered.yaml, document 3". */
  readonly where: string;
  readonly apiVersion: string;
  readonly kind: string;
  /** `<plural>.<group>` of a resource twokey gates, else `<Kind>.<apiVersion>` as written. */
  readonly resource: string;
  readonly gated: boolean;
  readonly namespace: string;
  readonly name: string;
  readonly object: JsonObject;
}

export interface Stream {
  readonly objects: readonly StreamObject[];
  /** What is not a Kubernetes object, or lacks what twokey needs, one line each. */
  readonly problems: readonly string[];
}

export function readStream(text: string, source: string, namespace?: string): Stream {
  const objects: StreamObject[] = [];
  const problems: string[] = [];
  const documents = parseAllDocuments(text, { uniqueKeys: true });
  if (!Array.isArray(documents)) return { objects, problems };
  documents.forEach((document, index) => {
    const where = `${source}, document ${index + 1}`;
    if (document.errors.length > 0) {
      problems.push(`${where} is not valid YAML: ${document.errors[0]?.message.split('\n')[0]}`);
      return;
    }
    const value: unknown = document.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    const metadata = isJsonObject(value) && isJsonObject(value.metadata) ? value.metadata : undefined;
    if (!isJsonObject(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !metadata) {
      problems.push(`${where} is not a Kubernetes object (it needs apiVersion, kind and metadata)`);
      return;
    }
    const { apiVersion, kind } = value;
    const gr = resourceForKind(apiVersion, kind);
    if (kind.endsWith('List') && Array.isArray(value.items)) {
      problems.push(`${where} is a ${kind}: write its items as documents of their own`);
      return;
    }
    if (typeof metadata.name !== 'string' || metadata.name === '') {
      problems.push(`${where} (${kind}) has no metadata.name`);
      return;
    }
    const name = metadata.name;
    const clusterScoped = gr !== undefined && gr.resource === NAMESPACES.resource && gr.group === NAMESPACES.group;
    let objectNamespace = typeof metadata.namespace === 'string' ? metadata.namespace : '';
    if (gr && !clusterScoped && objectNamespace === '') {
      if (namespace === undefined) {
        problems.push(`${where}: ${kind} ${name} names no namespace; give one with -n (kubectl would put it in the context's namespace)`);
        return;
      }
      objectNamespace = namespace;
    }
    objects.push({
      document: index,
      where,
      apiVersion,
      kind,
      resource: gr ? qualifiedResource(gr) : `${kind}.${apiVersion}`,
      gated: gr !== undefined,
      namespace: clusterScoped ? '' : objectNamespace,
      name,
      object: value,
    });
  });
  return { objects, problems };
}
