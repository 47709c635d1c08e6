/**
 * Strict I-JSON (RFC 7493) decoding for token segments. JSON.parse silently keeps the last of
 * duplicate members and turns 1e400 into Infinity; a token whose meaning depends on such
 * leniency must not count, so this parser refuses it instead. The grammar is JSON.parse's
 * (RFC 8259: no raw control characters in strings, no trailing commas); the members and values
 * are read from momoa's syntax tree, which keeps every duplicate.
 */

import type { AnyNode } from '@humanwhocodes/momoa';
import { parse as parseJsonAst } from '@humanwhocodes/momoa';

export type IJsonProblem = 'utf8' | 'bom' | 'syntax' | 'duplicate-member' | 'non-finite-number' | 'surrogate' | 'noncharacter';

export class IJsonError extends Error {
  readonly problem: IJsonProblem;
  constructor(problem: IJsonProblem, message: string) {
    super(message);
    this.name = 'IJsonError';
    this.problem = problem;
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Unicode noncharacters, which I-JSON strings must not hold: U+FDD0..U+FDEF and U+xxFFFE/U+xxFFFF of every plane. */
const NONCHARACTER =
  /[\u{FDD0}-\u{FDEF}\u{FFFE}\u{FFFF}\u{1FFFE}\u{1FFFF}\u{2FFFE}\u{2FFFF}\u{3FFFE}\u{3FFFF}\u{4FFFE}\u{4FFFF}\u{5FFFE}\u{5FFFF}\u{6FFFE}\u{6FFFF}\u{7FFFE}\u{7FFFF}\u{8FFFE}\u{8FFFF}\u{9FFFE}\u{9FFFF}\u{AFFFE}\u{AFFFF}\u{BFFFE}\u{BFFFF}\u{CFFFE}\u{CFFFF}\u{DFFFE}\u{DFFFF}\u{EFFFE}\u{EFFFF}\u{FFFFE}\u{FFFFF}\u{10FFFE}\u{10FFFF}]/u;

export function decodeIJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new IJsonError('utf8', 'is not valid UTF-8');
  }
  if (text.startsWith('\uFEFF')) throw new IJsonError('bom', 'starts with a byte-order mark');
  let root: AnyNode;
  try {
    JSON.parse(text);
    root = parseJsonAst(text, { mode: 'json' }).body;
  } catch {
    throw new IJsonError('syntax', 'is not JSON');
  }
  return toValue(root);
}

function checkString(value: string): string {
  if (!value.isWellFormed()) throw new IJsonError('surrogate', 'holds a lone surrogate');
  if (NONCHARACTER.test(value)) throw new IJsonError('noncharacter', 'holds a Unicode noncharacter');
  return value;
}

function toValue(node: AnyNode): unknown {
  switch (node.type) {
    case 'Object': {
      const out: Record<string, unknown> = {};
      const seen = new Set<string>();
      for (const member of node.members) {
        const name = checkString(member.name.type === 'String' ? member.name.value : member.name.name);
        if (seen.has(name)) throw new IJsonError('duplicate-member', `has the member "${name}" twice`);
        seen.add(name);
        Object.defineProperty(out, name, {
          value: toValue(member.value),
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return out;
    }
    case 'Array':
      return node.elements.map((element) => toValue(element.value));
    case 'String':
      return checkString(node.value);
    case 'Number':
      if (!Number.isFinite(node.value)) throw new IJsonError('non-finite-number', 'holds a number that is not finite');
      return node.value;
    case 'Boolean':
      return node.value;
    case 'Null':
      return null;
    default:
      throw new IJsonError('syntax', 'is not JSON');
  }
}
