/**
 * A plan's entries as the leaves of its tree: one canonical order whatever order they come in,
 * proofs that prove exactly their own entry, and the proof annotation read as untrusted input.
 */
import { describe, expect, it } from 'vitest';
import {
  decodeProofs,
  encodeProofs,
  MAX_PLAN_ENTRIES,
  type PlanEntry,
  PlanError,
  planTree,
  proofAnnotationKey,
  provesEntry,
} from '../../src/plan/entries.ts';

const digest = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}`;
const entry = (name: string, n: number, action: PlanEntry['action'] = 'deploy'): PlanEntry => ({
  action,
  resource: 'deployments.apps',
  namespace: 'payments',
  name,
  digest: digest(n),
});
const ENTRIES = Array.from({ length: 100 }, (_, i) => entry(`api-${String(i).padStart(3, '0')}`, i + 1));

describe('a plan of many objects', () => {
  it('has one digest whatever order its entries come in', () => {
    const reversed = planTree([...ENTRIES].reverse());
    expect(planTree(ENTRIES).digest).toBe(reversed.digest);
    expect(reversed.entries[0]).toEqual(ENTRIES[0]);
    expect(planTree(ENTRIES).digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('proves each entry with its own proof, and no other entry with it', () => {
    const tree = planTree(ENTRIES);
    tree.entries.forEach((own, index) => {
      const proofs = { plan: tree.digest, size: tree.entries.length, proofs: [tree.proof(index)] };
      expect(provesEntry(own, proofs)).toBe(true);
      const neighbour = tree.entries[(index + 1) % tree.entries.length] as PlanEntry;
      expect(provesEntry(neighbour, proofs)).toBe(false);
      // The same object with another spec, or the other action: another entry.
      expect(provesEntry({ ...own, digest: digest(999) }, proofs)).toBe(false);
      expect(provesEntry({ ...own, action: 'unprotect' }, proofs)).toBe(false);
      expect(provesEntry({ ...own, namespace: 'checkout' }, proofs)).toBe(false);
    });
    // A proof for another plan proves nothing in this one.
    const other = planTree(ENTRIES.slice(1));
    expect(provesEntry(ENTRIES[1] as PlanEntry, { plan: tree.digest, size: 99, proofs: [other.proof(0)] })).toBe(false);
  });

  it('proves both aspects of one object when it carries a proof for each', () => {
    const tree = planTree([...ENTRIES.slice(0, 3), entry('api-001', 77, 'unprotect')]);
    const indexes = tree.entries.flatMap((e, i) => (e.name === 'api-001' ? [i] : []));
    const proofs = { plan: tree.digest, size: tree.entries.length, proofs: indexes.map((i) => tree.proof(i)) };
    expect(provesEntry(entry('api-001', 2), proofs)).toBe(true);
    expect(provesEntry(entry('api-001', 77, 'unprotect'), proofs)).toBe(true);
  });

  it('refuses no entries, too many, and one aspect of an object twice', () => {
    expect(() => planTree([])).toThrow(PlanError);
    expect(() => planTree(Array.from({ length: MAX_PLAN_ENTRIES + 1 }, (_, i) => entry(`a${i}`, i)))).toThrow(/at most 10000/);
    expect(() => planTree([entry('api', 1), entry('api', 2)])).toThrow('holds the deploy of deployments.apps payments/api twice');
    expect(() => planTree([{ ...entry('api', 1), digest: 'sha256:nope' }])).toThrow(/not a sha256 digest/);
  });
});

describe('the proof annotation', () => {
  const tree = planTree(ENTRIES);
  const proofs = { plan: tree.digest, size: 100, proofs: [tree.proof(42)] };

  it('round-trips and is keyed by the plan digest', () => {
    expect(decodeProofs(encodeProofs(proofs))).toEqual({ ok: true, proofs });
    expect(proofAnnotationKey(tree.digest)).toBe(`plan.twokey.dev/${tree.digest.slice(7, 39)}`);
    expect(proofAnnotationKey(tree.digest).split('/')[1]?.length).toBeLessThanOrEqual(63);
  });

  it.each([
    ['not JSON', '{', 'is not JSON'],
    ['not an object', '[]', 'is not a JSON object'],
    ['no plan', JSON.stringify({ ...proofs, plan: 'x' }), 'names no plan digest'],
    ['a size of zero', JSON.stringify({ ...proofs, size: 0 }), 'has no plan size'],
    ['a fractional size', JSON.stringify({ ...proofs, size: 1.5 }), 'has no plan size'],
    ['no proofs', JSON.stringify({ ...proofs, proofs: [] }), 'has no list of proofs'],
    ['too many proofs', JSON.stringify({ ...proofs, proofs: Array(9).fill(proofs.proofs[0]) }), 'has no list of proofs'],
    ['an index past the size', JSON.stringify({ ...proofs, proofs: [{ index: 100, path: [] }] }), 'leaf index within the plan'],
    ['an uppercase hash', JSON.stringify({ ...proofs, proofs: [{ index: 0, path: ['A'.repeat(64)] }] }), 'lowercase hex'],
    ['a path too long', JSON.stringify({ ...proofs, proofs: [{ index: 0, path: Array(33).fill('0'.repeat(64)) }] }), 'lowercase hex'],
  ])('refuses %s', (_what, value, reason) => {
    const decoded = decodeProofs(value);
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) expect(decoded.reason).toContain(reason);
  });
});
