/**
 * Reading Kubernetes manifests the way kubectl does: YAML or JSON, several documents per file,
 * `kind: List` expanded, `-` for stdin. Only the objects twokey gates are kept.
 */

import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { describeChangeTarget } from '../change/digest.ts';
import { TwokeyError } from '../errors.ts';
import { isJsonObject, type JsonObject } from '../json.ts';
import { type GroupResource, qualifiedResource, resourceForKind } from '../kubernetes/objects.ts';

export interface ManifestObject {
  readonly object: JsonObject;
  readonly resource: GroupResource;
  /** "" for Namespaces. */
  readonly namespace: string;
  readonly name: string;
  readonly source: string;
}

/** Where a manifest named `-` is read from, and who hears of objects skipped. */
export interface ManifestSource {
  readonly stdin: AsyncIterable<Uint8Array | string>;
  readonly skipped?: (what: string) => void;
}

async function readSource(file: string, stdin: AsyncIterable<Uint8Array | string>): Promise<string> {
  try {
    if (file === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of stdin) chunks.push(Buffer.from(chunk));
      return Buffer.concat(chunks).toString('utf8');
    }
    return await readFile(file, 'utf8');
  } catch (error) {
    throw new TwokeyError('ERR_MANIFEST_INVALID', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
}

export function parseManifests(text: string, file: string): JsonObject[] {
  const out: JsonObject[] = [];
  parseAllDocuments(text, { uniqueKeys: true }).forEach((document, index) => {
    if (document.errors.length > 0) {
      throw new TwokeyError(
        'ERR_MANIFEST_INVALID',
        `${file}: document ${index + 1} is not valid YAML: ${document.errors[0]?.message.split('\n')[0]}`,
      );
    }
    const value: unknown = document.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return;
    if (!isJsonObject(value)) throw new TwokeyError('ERR_MANIFEST_INVALID', `${file}: document ${index + 1} is not an object`);
    if (typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
      for (const item of value.items) {
        if (!isJsonObject(item))
          throw new TwokeyError('ERR_MANIFEST_INVALID', `${file}: an item of document ${index + 1} is not an object`);
        out.push(item);
      }
    } else {
      out.push(value);
    }
  });
  return out;
}

/** The gated objects in a file; others are reported through `skipped`. */
export async function readManifests(file: string, defaultNamespace: string, source: ManifestSource): Promise<ManifestObject[]> {
  const skipped = source.skipped ?? (() => {});
  const objects = parseManifests(await readSource(file, source.stdin), file === '-' ? 'stdin' : file);
  const out: ManifestObject[] = [];
  for (const object of objects) {
    const apiVersion = typeof object.apiVersion === 'string' ? object.apiVersion : '';
    const kind = typeof object.kind === 'string' ? object.kind : '';
    const metadata = isJsonObject(object.metadata) ? object.metadata : {};
    const name = typeof metadata.name === 'string' ? metadata.name : '';
    const resource = resourceForKind(apiVersion, kind);
    if (!resource) {
      skipped(`${kind || 'object without kind'} ${name} (${apiVersion || 'no apiVersion'}) is not gated by twokey`);
      continue;
    }
    if (name === '') throw new TwokeyError('ERR_MANIFEST_INVALID', `${file}: a ${kind} has no metadata.name`);
    const isNamespace = resource.resource === 'namespaces';
    const namespace = isNamespace
      ? ''
      : typeof metadata.namespace === 'string' && metadata.namespace
        ? metadata.namespace
        : defaultNamespace;
    // Like the apiserver, the object as judged carries its namespace.
    const judged: JsonObject = isNamespace ? object : { ...object, metadata: { ...metadata, namespace } };
    out.push({ object: judged, resource, namespace, name, source: file });
  }
  return out;
}

export function describeManifest(m: ManifestObject): string {
  return describeChangeTarget({ resource: qualifiedResource(m.resource), namespace: m.namespace, name: m.name });
}
