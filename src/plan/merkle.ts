/**
 * Merkle trees as RFC 6962 defines them for Certificate Transparency (and RFC 9162 keeps): a
 * change's approval can sign one tree head for every object of the change, and each object carries
 * only the short path that proves its own entry is in that tree. Leaves are hashed as
 * SHA-256(0x00 || data) and nodes as SHA-256(0x01 || left || right), so a node can never pass for
 * a leaf; a tree of n leaves splits at the largest power of two below n.
 */
import { createHash } from 'node:crypto';

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

export function leafHash(data: Uint8Array): Buffer {
  return createHash('sha256').update(LEAF_PREFIX).update(data).digest();
}

function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash('sha256').update(NODE_PREFIX).update(left).update(right).digest();
}

/** The largest power of two below n (n > 1). */
function split(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/**
 * A tree over leaf hashes whose subtree hashes are each computed once: the proofs of all n leaves
 * then cost O(n log n) hashes instead of O(n²), which a plan of thousands of entries needs.
 */
export class MerkleTree {
  readonly #leaves: readonly Uint8Array[];
  readonly #memo = new Map<number, Buffer>();

  constructor(leaves: readonly Uint8Array[]) {
    this.#leaves = leaves;
  }

  /** MTH(D[n]): the tree head; SHA-256("") for no leaves. */
  head(): Buffer {
    return this.#hash(0, this.#leaves.length);
  }

  /** PATH(m, D[n]): the hashes that prove leaf m is in the tree, nearest first. */
  path(m: number): Buffer[] {
    const n = this.#leaves.length;
    if (!Number.isInteger(m) || m < 0 || m >= n) throw new RangeError(`no leaf ${m} in a tree of ${n}`);
    return this.#path(m, 0, n);
  }

  #path(m: number, start: number, end: number): Buffer[] {
    if (end - start === 1) return [];
    const k = split(end - start);
    return m < start + k
      ? [...this.#path(m, start, start + k), this.#hash(start + k, end)]
      : [...this.#path(m, start + k, end), this.#hash(start, start + k)];
  }

  /** The hash of the subtree of leaves [start, end). */
  #hash(start: number, end: number): Buffer {
    if (end === start) return createHash('sha256').digest();
    if (end - start === 1) return Buffer.from(this.#leaves[start] as Uint8Array);
    const key = start * (this.#leaves.length + 1) + end;
    let hash = this.#memo.get(key);
    if (hash === undefined) {
      const k = split(end - start);
      hash = nodeHash(this.#hash(start, start + k), this.#hash(start + k, end));
      this.#memo.set(key, hash);
    }
    return hash;
  }
}

/** MTH(D[n]): the tree head of leaves given by their leaf hashes; SHA-256("") for none. */
export function treeHash(leaves: readonly Uint8Array[]): Buffer {
  return new MerkleTree(leaves).head();
}

/** PATH(m, D[n]): the hashes that prove leaf m is in the tree, nearest first. */
export function inclusionPath(leaves: readonly Uint8Array[], m: number): Buffer[] {
  return new MerkleTree(leaves).path(m);
}

/**
 * Whether `path` proves that the leaf with hash `leaf` is leaf `index` of a tree of `size` leaves
 * whose head is `root` (the verification of RFC 9162, section 2.1.3.2). Never throws.
 */
export function verifyInclusion(leaf: Uint8Array, index: number, size: number, path: readonly Uint8Array[], root: Uint8Array): boolean {
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let hash: Uint8Array = leaf;
  for (const sibling of path) {
    if (sibling.length !== 32 || sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      hash = nodeHash(sibling, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      hash = nodeHash(hash, sibling);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && Buffer.from(hash).equals(Buffer.from(root));
}
