/**
 * The plan approval's test vectors in the README ("Approving a change of many objects", "Test
 * vectors") are what the code computes, so a change system that checks itself against them checks
 * itself against the webhook.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  decodeProofs,
  encodeProofs,
  entryLeaf,
  type PlanEntry,
  planTree,
  proofAnnotationKey,
  provesEntry,
} from '../../src/plan/entries.ts';

interface Vectors {
  entries: PlanEntry[];
  leaves: string[];
  node01: string;
  plan: string;
  annotationKey: string;
  annotation: { plan: string; size: number; proofs: Array<{ index: number; path: string[] }> };
  cartProof: { index: number; path: string[] };
}

function readmeVectors(): Vectors {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.slice(readme.indexOf('#### Test vectors'));
  const block = /```json\n([\s\S]*?)\n```/.exec(section)?.[1];
  if (!block) throw new Error('no json block under "#### Test vectors" in README.md');
  return JSON.parse(block) as Vectors;
}

const stand = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

describe('the README test vectors', () => {
  const v = readmeVectors();
  const tree = planTree([...v.entries].reverse());

  it('are entries in the plan order, with the stand-in digests the README names', () => {
    expect(tree.entries).toEqual(v.entries);
    expect(v.entries.map((e) => e.digest)).toEqual([stand('api'), stand('api unprotect'), stand('cart')]);
  });

  it('give the leaf hashes, the node, the tree head and the proofs the code computes', () => {
    expect(v.entries.map((e) => entryLeaf(e).toString('hex'))).toEqual(v.leaves);
    const node = (left: string, right: string) =>
      createHash('sha256')
        .update(Buffer.from([1]))
        .update(Buffer.from(left, 'hex'))
        .update(Buffer.from(right, 'hex'))
        .digest('hex');
    expect(node(v.leaves[0] as string, v.leaves[1] as string)).toBe(v.node01);
    expect(`sha256:${node(v.node01, v.leaves[2] as string)}`).toBe(v.plan);
    expect(tree.digest).toBe(v.plan);
    expect(proofAnnotationKey(v.plan)).toBe(v.annotationKey);
    expect(JSON.parse(encodeProofs({ plan: tree.digest, size: 3, proofs: [tree.proof(0), tree.proof(1)] }))).toEqual(v.annotation);
    expect(tree.proof(2)).toEqual(v.cartProof);
  });

  it("prove api's entries from its annotation, and not cart's", () => {
    const decoded = decodeProofs(JSON.stringify(v.annotation));
    if (!decoded.ok) throw new Error(decoded.reason);
    expect(provesEntry(v.entries[0] as PlanEntry, decoded.proofs)).toBe(true);
    expect(provesEntry(v.entries[1] as PlanEntry, decoded.proofs)).toBe(true);
    expect(provesEntry(v.entries[2] as PlanEntry, decoded.proofs)).toBe(false);
  });
});
