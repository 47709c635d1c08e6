/**
 * A change of many objects, as one approval binds it. Each gated aspect of each object is an entry
 * (action, resource, namespace, name, digest: what a single-object approval binds); the entries,
 * in one canonical order, are the leaves of a Merkle tree, and the plan's digest is its head. An
 * approval of the plan signs that head; each object carries, in an annotation, the path that proves
 * its own entries are leaves of it. The README ("Approving a change of many objects") gives the rules
 * and test vectors.
 */
import canonicalize from 'canonicalize';
import { ACTIONS, type Action, DIGEST_PATTERN } from '../change/digest.ts';
import { isJsonObject } from '../json.ts';
import { leafHash, MerkleTree, verifyInclusion } from './merkle.ts';

export interface PlanEntry {
  readonly action: Action;
  readonly resource: string;
  readonly namespace: string;
  readonly name: string;
  readonly digest: string;
}

/** The proof that one entry is a leaf of a plan's tree. */
export interface EntryProof {
  readonly index: number;
  /** The sibling hashes, nearest first, as lowercase hex. */
  readonly path: readonly string[];
}

/** What an object carries for one plan: the plan's digest and size, and a proof for each of its entries. */
export interface PlanProofs {
  readonly plan: string;
  readonly size: number;
  readonly proofs: readonly EntryProof[];
}

/** Objects carry their proofs in `plan.twokey.dev/<first 32 hex digits of the plan digest>`. */
export const PLAN_PROOF_PREFIX = 'plan.twokey.dev/';
/** More entries than this make no plan: one approval should not cover more than people can review. */
export const MAX_PLAN_ENTRIES = 10_000;
/** The longest audit path a plan of MAX_PLAN_ENTRIES leaves: the tree's height. */
export const MAX_PROOF_PATH = Math.ceil(Math.log2(MAX_PLAN_ENTRIES));
/** An object is at most one entry per action of a plan, so it carries at most this many proofs. */
export const MAX_OBJECT_PROOFS = ACTIONS.length;
/** The largest proof annotation read: MAX_OBJECT_PROOFS proofs of MAX_PROOF_PATH hashes fit in 3 KB. */
export const MAX_PROOF_ANNOTATION_BYTES = 4096;
const HEX_HASH = /^[0-9a-f]{64}$/;

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Entries in the plan's order: by resource, namespace, name, then action (strings by UTF-16 code units). */
export function orderEntries(entries: readonly PlanEntry[]): PlanEntry[] {
  return [...entries].sort(
    (a, b) =>
      compare(a.resource, b.resource) || compare(a.namespace, b.namespace) || compare(a.name, b.name) || compare(a.action, b.action),
  );
}

/** The leaf of an entry: the UTF-8 of its RFC 8785 canonical JSON, with exactly these five members. */
export function entryLeaf(entry: PlanEntry): Buffer {
  const { action, resource, namespace, name, digest } = entry;
  return leafHash(Buffer.from(canonicalize({ action, resource, namespace, name, digest }) as string, 'utf8'));
}

const sameTarget = (a: PlanEntry, b: PlanEntry) =>
  a.action === b.action && a.resource === b.resource && a.namespace === b.namespace && a.name === b.name;

export class PlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PlanError';
  }
}

export interface PlanTree {
  /** "sha256:" and the hex of the tree head. */
  readonly digest: string;
  readonly entries: readonly PlanEntry[];
  /** The proof of the entry at `index` of `entries`. */
  proof(index: number): EntryProof;
}

/** The tree of a plan's entries. Throws PlanError for no entries, too many, or one aspect of an object twice. */
export function planTree(entries: readonly PlanEntry[]): PlanTree {
  if (entries.length === 0) throw new PlanError('a plan needs at least one entry');
  if (entries.length > MAX_PLAN_ENTRIES) throw new PlanError(`a plan holds at most ${MAX_PLAN_ENTRIES} entries, not ${entries.length}`);
  const ordered = orderEntries(entries);
  for (const [i, entry] of ordered.entries()) {
    if (!ACTIONS.includes(entry.action)) throw new PlanError(`entry ${i}: action ${JSON.stringify(entry.action)} is not one twokey gates`);
    if (!DIGEST_PATTERN.test(entry.digest)) throw new PlanError(`entry ${i}: ${JSON.stringify(entry.digest)} is not a sha256 digest`);
    const previous = ordered[i - 1];
    if (previous && sameTarget(previous, entry)) {
      const where = entry.namespace === '' ? entry.name : `${entry.namespace}/${entry.name}`;
      throw new PlanError(`the plan holds the ${entry.action} of ${entry.resource} ${where} twice`);
    }
  }
  const tree = new MerkleTree(ordered.map(entryLeaf));
  return {
    digest: `sha256:${tree.head().toString('hex')}`,
    entries: ordered,
    proof: (index) => ({ index, path: tree.path(index).map((hash) => hash.toString('hex')) }),
  };
}

/** Whether `proofs` prove `entry` to be a leaf of the plan whose digest and size they name. */
export function provesEntry(entry: PlanEntry, proofs: PlanProofs): boolean {
  const root = Buffer.from(proofs.plan.slice('sha256:'.length), 'hex');
  const leaf = entryLeaf(entry);
  return proofs.proofs.some((proof) =>
    verifyInclusion(
      leaf,
      proof.index,
      proofs.size,
      proof.path.map((hex) => Buffer.from(hex, 'hex')),
      root,
    ),
  );
}

export function proofAnnotationKey(plan: string): string {
  return `${PLAN_PROOF_PREFIX}${plan.slice('sha256:'.length, 'sha256:'.length + 32)}`;
}

export function encodeProofs(proofs: PlanProofs): string {
  return JSON.stringify({ plan: proofs.plan, size: proofs.size, proofs: proofs.proofs.map(({ index, path }) => ({ index, path })) });
}

/**
 * Reads the proofs an object carries for a plan, as untrusted input: what is not exactly of the
 * documented shape is refused with the reason, never half-read.
 */
export function decodeProofs(value: string): ProofsRead {
  let document: unknown;
  try {
    document = JSON.parse(value);
  } catch {
    return { ok: false, reason: 'is not JSON' };
  }
  return readProofs(document);
}

export type ProofsRead = { ok: true; proofs: PlanProofs } | { ok: false; reason: string };

/** Reads proofs from a parsed annotation value (the webhook parses it as strict I-JSON first). */
export function readProofs(document: unknown): ProofsRead {
  if (!isJsonObject(document)) return { ok: false, reason: 'is not a JSON object' };
  const { plan, size, proofs } = document;
  if (typeof plan !== 'string' || !DIGEST_PATTERN.test(plan)) return { ok: false, reason: 'names no plan digest' };
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1 || size > MAX_PLAN_ENTRIES) {
    return { ok: false, reason: `has no plan size from 1 to ${MAX_PLAN_ENTRIES}` };
  }
  if (!Array.isArray(proofs) || proofs.length === 0 || proofs.length > MAX_OBJECT_PROOFS) {
    return { ok: false, reason: `has no list of proofs (1 to ${MAX_OBJECT_PROOFS}, one per entry of the object)` };
  }
  const read: EntryProof[] = [];
  for (const proof of proofs) {
    if (!isJsonObject(proof)) return { ok: false, reason: 'holds a proof that is not an object' };
    const { index, path } = proof;
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0 || index >= size) {
      return { ok: false, reason: 'holds a proof without a leaf index within the plan' };
    }
    if (read.some((other) => other.index === index)) return { ok: false, reason: `holds two proofs of leaf ${index}` };
    if (!Array.isArray(path) || path.length > MAX_PROOF_PATH || !path.every((hash) => typeof hash === 'string' && HEX_HASH.test(hash))) {
      return { ok: false, reason: `holds a proof whose path is not a list of at most ${MAX_PROOF_PATH} SHA-256 hashes in lowercase hex` };
    }
    read.push({ index, path: path as string[] });
  }
  return { ok: true, proofs: { plan, size, proofs: read } };
}
