/**
 * Adds annotations to objects in a stream of YAML (or JSON) documents, leaving every other byte as
 * it was: `helm template` output, kustomize output, a hand-written file. The parser's node positions
 * say where each object's metadata and annotations are; new annotations are spliced in there, in the
 * style the document already uses (block lines, or members of a flow mapping as JSON writes them).
 * The result is parsed again and compared with what was meant before it is returned, so a document
 * this cannot edit exactly is refused instead of half-annotated.
 */
import { isDeepStrictEqual } from 'node:util';
import { isMap, isPair, isScalar, type Node, type Pair, parseAllDocuments, type YAMLMap } from 'yaml';

export class AnnotateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnnotateError';
  }
}

/** A change of the text: replace [start, end) with `text`. */
interface Splice {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

type Range = readonly [number, number, number];

const rangeOf = (node: Node | null | undefined): Range => {
  const range = node?.range;
  if (!range) throw new AnnotateError('the parser gave no position for a node');
  return range;
};

/** Written as JSON writes a string: a double-quoted scalar in YAML, safe whatever YAML version reads it. */
const quoted = (value: string) => JSON.stringify(value);

function pairNamed(map: YAMLMap, name: string): Pair | undefined {
  return map.items.find((item): item is Pair => isPair(item) && isScalar(item.key) && item.key.value === name);
}

/** The column of a map's first key: where new keys of a block map start. */
function indentOf(text: string, map: YAMLMap): string {
  const first = map.items[0];
  if (!first || !isPair(first)) throw new AnnotateError('an empty block mapping');
  const start = rangeOf(first.key as Node)[0];
  const lineStart = text.lastIndexOf('\n', start - 1) + 1;
  const indent = text.slice(lineStart, start);
  if (!/^ *$/.test(indent)) throw new AnnotateError('a mapping key that does not start its line');
  return indent;
}

/** Where a line can be added after a block map: after the line on which its last item ends. */
function afterLastLine(text: string, map: YAMLMap): number {
  const last = map.items.at(-1);
  if (!last || !isPair(last)) throw new AnnotateError('an empty block mapping');
  const end = rangeOf((last.value ?? last.key) as Node)[1];
  if (end > 0 && text[end - 1] === '\n') return end;
  const newline = text.indexOf('\n', end);
  return newline === -1 ? text.length : newline + 1;
}

function lineBreakOf(text: string): string {
  return text.includes('\r\n') ? '\r\n' : '\n';
}

/** The splices that give `metadata` these annotations. */
function annotationSplices(text: string, metadata: YAMLMap, annotations: Readonly<Record<string, string>>, eol: string): Splice[] {
  const splices: Splice[] = [];
  const pair = pairNamed(metadata, 'annotations');
  const existing = pair && isMap(pair.value) ? pair.value : undefined;
  const toAdd: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(annotations)) {
    const present = existing ? pairNamed(existing, key) : undefined;
    if (present === undefined) {
      toAdd.push([key, value]);
      continue;
    }
    if (!isScalar(present.value)) throw new AnnotateError(`annotation ${key} is not a string`);
    if (present.value.value === value) continue;
    const [start, end] = rangeOf(present.value);
    splices.push({ start, end, text: quoted(value) });
  }
  if (toAdd.length === 0) return splices;

  const flowMembers = toAdd.map(([key, value]) => `${quoted(key)}: ${quoted(value)}`).join(', ');
  if (existing?.flow) {
    // Before the closing brace: {} becomes {"k": "v"}, {"a": "b"} becomes {"a": "b", "k": "v"}.
    const close = rangeOf(existing)[1] - 1;
    if (text[close] !== '}') throw new AnnotateError('a flow mapping that does not end with }');
    splices.push({ start: close, end: close, text: `${existing.items.length > 0 ? ', ' : ''}${flowMembers}` });
    return splices;
  }
  if (existing) {
    const indent = indentOf(text, existing);
    const at = afterLastLine(text, existing);
    const lead = at === text.length && !text.endsWith('\n') ? eol : '';
    splices.push({ start: at, end: at, text: `${lead}${toAdd.map(([key, value]) => `${indent}${key}: ${quoted(value)}${eol}`).join('')}` });
    return splices;
  }
  if (pair) {
    // `annotations:` with no value, or null.
    if (!(pair.value === null || (isScalar(pair.value) && pair.value.value === null))) {
      throw new AnnotateError('metadata.annotations is not a mapping');
    }
    if (metadata.flow) {
      const [start, end] = pair.value ? rangeOf(pair.value as Node) : [rangeOf(pair.key as Node)[1], rangeOf(pair.key as Node)[1]];
      splices.push({ start, end, text: `${pair.value ? '' : ' '}{${flowMembers}}` });
      return splices;
    }
    const keyStart = rangeOf(pair.key as Node)[0];
    const indent = `${text.slice(text.lastIndexOf('\n', keyStart - 1) + 1, keyStart)}  `;
    const lineEnd = text.indexOf('\n', rangeOf(pair.key as Node)[1]);
    const at = lineEnd === -1 ? text.length : lineEnd + 1;
    const lead = lineEnd === -1 ? eol : '';
    splices.push({ start: at, end: at, text: `${lead}${toAdd.map(([key, value]) => `${indent}${key}: ${quoted(value)}${eol}`).join('')}` });
    return splices;
  }
  if (metadata.flow) {
    const close = rangeOf(metadata)[1] - 1;
    if (text[close] !== '}') throw new AnnotateError('a flow mapping that does not end with }');
    splices.push({ start: close, end: close, text: `${metadata.items.length > 0 ? ', ' : ''}"annotations": {${flowMembers}}` });
    return splices;
  }
  const indent = indentOf(text, metadata);
  const at = afterLastLine(text, metadata);
  const lead = at === text.length && !text.endsWith('\n') ? eol : '';
  const lines = toAdd.map(([key, value]) => `${indent}  ${key}: ${quoted(value)}${eol}`).join('');
  splices.push({ start: at, end: at, text: `${lead}${indent}annotations:${eol}${lines}` });
  return splices;
}

/**
 * Adds `annotations` (by document index, counting every document of the stream, empty ones
 * included) to the objects of a YAML stream. Throws AnnotateError naming the document when one
 * cannot be edited exactly.
 */
export function addAnnotations(text: string, edits: ReadonlyMap<number, Readonly<Record<string, string>>>): string {
  const documents = parseAllDocuments(text, { uniqueKeys: true });
  if (!Array.isArray(documents)) throw new AnnotateError('the stream is empty');
  const eol = lineBreakOf(text);
  const splices: Splice[] = [];
  for (const [index, annotations] of edits) {
    const document = documents[index];
    if (!document) throw new AnnotateError(`there is no document ${index + 1}`);
    try {
      if (document.errors.length > 0) throw new AnnotateError(document.errors[0]?.message.split('\n')[0] ?? 'not valid YAML');
      const root = document.contents;
      if (!isMap(root)) throw new AnnotateError('it is not a mapping');
      const metadata = pairNamed(root, 'metadata')?.value;
      if (!isMap(metadata)) throw new AnnotateError('it has no metadata mapping');
      splices.push(...annotationSplices(text, metadata, annotations, eol));
    } catch (error) {
      if (error instanceof AnnotateError) throw new AnnotateError(`document ${index + 1}: ${error.message}`);
      throw error;
    }
  }
  let out = text;
  for (const splice of [...splices].sort((a, b) => b.start - a.start))
    out = out.slice(0, splice.start) + splice.text + out.slice(splice.end);
  verify(text, out, edits);
  return out;
}

/** The output must read as the input with exactly these annotations added, document by document. */
function verify(before: string, after: string, edits: ReadonlyMap<number, Readonly<Record<string, string>>>): void {
  const read = (text: string) => parseAllDocuments(text, { uniqueKeys: true });
  const was = read(before);
  const is = read(after);
  if (!Array.isArray(was) || !Array.isArray(is) || was.length !== is.length) throw new AnnotateError('the edit changed the documents');
  was.forEach((document, index) => {
    const expected = document.toJS({ maxAliasCount: 100 }) as unknown;
    const annotations = edits.get(index);
    if (annotations && expected && typeof expected === 'object') {
      const object = expected as { metadata: { annotations?: Record<string, string> | null } };
      object.metadata.annotations = { ...(object.metadata.annotations ?? {}), ...annotations };
    }
    const actual = is[index];
    if (!actual || actual.errors.length > 0 || !isDeepStrictEqual(actual.toJS({ maxAliasCount: 100 }), expected)) {
      throw new AnnotateError(`document ${index + 1}: could not be annotated exactly (it is written in a way this does not edit)`);
    }
  });
}
