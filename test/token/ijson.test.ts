import { describe, expect, it } from 'vitest';
import { decodeIJson, IJsonError } from '../../src/token/ijson.ts';

const decode = (text: string | Uint8Array) => decodeIJson(typeof text === 'string' ? Buffer.from(text) : text);
const problem = (text: string | Uint8Array) => {
  try {
    decode(text);
    return 'none';
  } catch (error) {
    return error instanceof IJsonError ? error.problem : 'other';
  }
};

describe('strict I-JSON decoding', () => {
  it('decodes ordinary JSON', () => {
    expect(decode('{"a":[1,2.5,"x",true,null],"b":{"c":"\\u00e9"}}')).toEqual({ a: [1, 2.5, 'x', true, null], b: { c: 'é' } });
  });

  it('keeps a member named __proto__ as data', () => {
    const value = decode('{"__proto__":{"polluted":true}}') as Record<string, unknown>;
    expect(Object.keys(value)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it.each([
    ['duplicate members', '{"a":1,"a":1}', 'duplicate-member'],
    ['duplicate members written with escapes', '{"a":1,"\\u0061":2}', 'duplicate-member'],
    ['nested duplicates', '{"x":{"b":1,"b":2}}', 'duplicate-member'],
    ['a number that overflows', '{"a":1e400}', 'non-finite-number'],
    ['a negative overflow', '{"a":-1e400}', 'non-finite-number'],
    ['a lone surrogate', '{"a":"\\udc00"}', 'surrogate'],
    ['a lone surrogate in a name', '{"\\ud800":1}', 'surrogate'],
    ['trailing commas', '{"a":1,}', 'syntax'],
    ['comments', '{"a":1 /* x */}', 'syntax'],
    ['single quotes', "{'a':1}", 'syntax'],
    ['a byte-order mark', '\uFEFF{"a":1}', 'bom'],
    ['a raw tab in a string', '{"a":"x\ty"}', 'syntax'],
    ['a raw line feed in a string', '{"a":"x\ny"}', 'syntax'],
    ['a raw NUL in a name', '{"a\u0000":1}', 'syntax'],
    ['a leading zero', '{"a":01}', 'syntax'],
    ['a noncharacter U+FFFF', '{"a":"\\uffff"}', 'noncharacter'],
    ['a noncharacter U+FDD0 in a name', '{"\\ufdd0":1}', 'noncharacter'],
    ['a noncharacter of plane 16 (U+10FFFE)', '{"a":"\\udbff\\udffe"}', 'noncharacter'],
  ])('refuses %s', (_name, text, expected) => {
    expect(problem(text)).toBe(expected);
  });

  it('accepts characters next to the noncharacters', () => {
    expect(decode('{"a":"\\ufdcf\\ufdf0\\ufffd\\ud83d\\ude00"}')).toEqual({ a: '\ufdcf\ufdf0\ufffd\u{1F600}' });
  });

  it('refuses invalid UTF-8', () => {
    expect(problem(Uint8Array.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]))).toBe('utf8');
  });
});
