/**
 * The Merkle tree against RFC 6962's published test data (the eight Certificate Transparency
 * leaves, their tree heads and two inclusion paths), and every inclusion proof of every tree up to
 * 40 leaves against tampering.
 */
import { describe, expect, it } from 'vitest';
import { MAX_PLAN_ENTRIES } from '../../src/plan/entries.ts';
import { inclusionPath, leafHash, MerkleTree, treeHash, verifyInclusion } from '../../src/plan/merkle.ts';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const bytes = (text: string) => Buffer.from(text, 'hex');

const DATA = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(bytes);
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const LEAVES = DATA.map(leafHash);

describe('RFC 6962 Merkle trees', () => {
  it('give the published tree heads for every prefix of the test data', () => {
    for (const [n, root] of ROOTS.entries()) expect(hex(treeHash(LEAVES.slice(0, n))), `size ${n}`).toBe(root);
  });

  it('give the published inclusion paths', () => {
    expect(inclusionPath(LEAVES, 0).map(hex)).toEqual([
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4',
    ]);
    expect(inclusionPath(LEAVES, 5).map(hex)).toEqual([
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    ]);
    expect(inclusionPath(LEAVES.slice(0, 1), 0)).toEqual([]);
  });

  it('verify every inclusion proof of every tree up to 40 leaves, and nothing tampered', () => {
    const many = Array.from({ length: 40 }, (_, i) => leafHash(Buffer.from([i, i * 7])));
    const other = leafHash(Buffer.from('not in the tree'));
    for (let n = 1; n <= many.length; n += 1) {
      const leaves = many.slice(0, n);
      const root = treeHash(leaves);
      for (let m = 0; m < n; m += 1) {
        const path = inclusionPath(leaves, m);
        expect(verifyInclusion(leaves[m] as Buffer, m, n, path, root), `leaf ${m} of ${n}`).toBe(true);
        expect(verifyInclusion(other, m, n, path, root)).toBe(false);
        if (n > 1) expect(verifyInclusion(leaves[m] as Buffer, (m + 1) % n, n, path, root)).toBe(false);
        expect(verifyInclusion(leaves[m] as Buffer, m, n, [...path, root], root)).toBe(false);
        if (path.length > 0) {
          expect(verifyInclusion(leaves[m] as Buffer, m, n, path.slice(1), root)).toBe(false);
          const flipped = path.map((hash, i) => (i === 0 ? Buffer.from(hash.map((b, j) => (j === 0 ? b ^ 1 : b))) : hash));
          expect(verifyInclusion(leaves[m] as Buffer, m, n, flipped, root)).toBe(false);
        }
      }
    }
  });

  it('refuses indexes and sizes out of range, and hashes of the wrong length', () => {
    const root = treeHash(LEAVES);
    const path = inclusionPath(LEAVES, 3);
    for (const [index, size] of [
      [-1, 8],
      [8, 8],
      [3, 0],
      [3.5, 8],
      [Number.NaN, 8],
    ] as const) {
      expect(verifyInclusion(LEAVES[3] as Buffer, index, size, path, root)).toBe(false);
    }
    expect(verifyInclusion(LEAVES[3] as Buffer, 3, 8, [path[0] as Buffer, Buffer.alloc(31), path[2] as Buffer], root)).toBe(false);
    expect(() => inclusionPath(LEAVES, 8)).toThrow(RangeError);
  });
});

describe('the proofs of a large plan', () => {
  it('read each leaf a bounded number of times: all proofs of a plan of the largest size cost O(n), not O(n²)', () => {
    const leaves = Array.from({ length: MAX_PLAN_ENTRIES }, (_, i) => leafHash(Buffer.from(String(i))));
    let reads = 0;
    const counted = new Proxy(leaves, {
      get(target, property, receiver) {
        if (typeof property === 'string' && /^\d+$/.test(property)) reads += 1;
        return Reflect.get(target, property, receiver);
      },
    });
    const tree = new MerkleTree(counted);
    const root = tree.head();
    for (let m = 0; m < leaves.length; m += 1) {
      const path = tree.path(m);
      if (m % 997 === 0) expect(verifyInclusion(leaves[m] as Buffer, m, leaves.length, path, root)).toBe(true);
    }
    // Each subtree hash is computed once: the head reads every leaf once, and each proof at most its
    // nearest sibling leaf. Recomputing sibling subtrees for every proof read n - 1 leaves per proof.
    expect(reads).toBeLessThanOrEqual(2 * MAX_PLAN_ENTRIES);
  });
});
