import { describe, expect, it } from 'vitest';
import { normalizeIdentity } from '../src/identity.ts';

describe('identity normal form', () => {
  it.each([
    ['Alice@Example.com ', 'alice@example.com'],
    ['\tALICE\u00A0', 'alice'],
    ['ａｌｉｃｅ', 'alice'],
    ['\u212Blvin', 'ålvin'],
    ['system:serviceaccount:ci:deployer', 'system:serviceaccount:ci:deployer'],
    ['İstanbul', 'i̇stanbul'],
  ])('%j → %j', (raw, expected) => {
    expect(normalizeIdentity(raw)).toBe(expected);
  });

  it.each([
    ['empty', ''],
    ['only spaces', '   '],
    ['an inner space', 'alice smith'],
    ['a zero-width space', 'al\u200Bice'],
    ['a zero-width joiner', 'al\u200Dice'],
    ['a byte-order mark inside', 'al\uFEFFice'],
    ['a control character', 'alice\u0000'],
    ['a line separator', 'alice\u2028bob'],
    ['a right-to-left override', 'alice\u202Eeci'],
    ['a lone surrogate', 'alice\uD800'],
  ])('rejects %s', (_name, raw) => {
    expect(normalizeIdentity(raw)).toBeUndefined();
  });
});
