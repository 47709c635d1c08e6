/**
 * An approval annotation's value read as a JWS, once: trimmed, size-checked, split into its
 * segments, and its header and payload decoded as I-JSON when first asked for. This is syntax
 * only, as jose keeps JWS syntax apart from claims: what the header and the claims must say is
 * for decision/approval.ts to check. A value that is not a JWS of acceptable size is a rejection
 * with a stable code, never an exception.
 */
import { isJsonObject, type JsonObject } from '../json.ts';
import { decodeIJson, IJsonError } from './ijson.ts';

/** Why a value is not a token that can be judged; also the approval report's code. */
export type TokenRejectionCode = 'too-large' | 'malformed' | 'not-ijson';

export interface TokenRejection {
  readonly ok: false;
  readonly code: TokenRejectionCode;
  readonly detail: string;
}

/** A header or payload decoded as an I-JSON object, or why it is not one. */
export type Decoded = { readonly ok: true; readonly value: JsonObject } | TokenRejection;

/** One signature of a JWS: its protected header and its signature, as written. */
export interface JwsSignature {
  /** The protected header's base64url segment. */
  readonly protectedHeader: string;
  /** The signature's base64url segment; empty when the token carries none (alg "none"). */
  readonly signature: string;
  /** The protected header as an I-JSON object, decoded on first use. */
  header(): Decoded;
}

/** A JWS in the compact serialization: header.payload.signature, one signature. */
export interface CompactJws {
  readonly ok: true;
  readonly serialization: 'compact';
  /** The token as judged: the value without the whitespace around it. Verified tokens are remembered by it. */
  readonly text: string;
  /**
   * What the token is, whatever its encoding: its signing input as written (the signature covers
   * those exact characters) and the bytes of its signature, so that copies with other whitespace
   * around them, or other unused bits in the signature's last character, are one token. Undefined
   * for a token without a signature: such a value is never the same token as another.
   */
  readonly identity: string | undefined;
  /** Whether the value is written as an encoder writes it: nothing around it, no stray bits. */
  readonly canonical: boolean;
  readonly signatures: readonly [JwsSignature];
  /** The payload's base64url segment. */
  readonly payloadSegment: string;
  /** The payload as an I-JSON object, decoded on first use. */
  payload(): Decoded;
}

/**
 * A JWS in the JSON General serialization (RFC 7515 §7.2.1), as a JSON object string:
 * `{"payload":…,"signatures":[{"protected":…,"signature":…},…]}`, one or two signatures over one
 * payload. twokey reads the first as the change system's and the second as the approver's
 * countersignature; which is which, and what each header must say, is for decision/approval.ts.
 * Only protected headers: a signature with an unprotected `header` is malformed.
 */
export interface GeneralJws {
  readonly ok: true;
  readonly serialization: 'general';
  /** The value as judged (trimmed): the whole JSON text, every signature included. Verified tokens are remembered by it. */
  readonly text: string;
  /** Its payload and every signature, as an encoder writes them: copies written otherwise are one token. */
  readonly identity: string;
  /** Whether the value is written exactly as twokey writes it (`generalJson`). */
  readonly canonical: boolean;
  readonly signatures: readonly [JwsSignature] | readonly [JwsSignature, JwsSignature];
  readonly payloadSegment: string;
  payload(): Decoded;
}

/** The most signatures a General token may carry: the change system's and the approver's. */
export const MAX_SIGNATURES = 2;

/**
 * A JWS read from an annotation. Each variant has one payload and its signatures, told apart by
 * `serialization`: compact (one signature) or the JSON General serialization (one or two).
 */
export type ParsedToken = CompactJws | GeneralJws;

/** A parsed token (`ok: true`), or why the value is not one. */
export type TokenParse = ParsedToken | TokenRejection;

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

const rejection = (code: TokenRejectionCode, detail: string): TokenRejection => ({ ok: false, code, detail });

/** Whether a token is at most `maxBytes` of UTF-8 (its length in UTF-16 units first, which is cheap). */
function withinSize(token: string, maxBytes: number): boolean {
  return token.length <= maxBytes && Buffer.byteLength(token, 'utf8') <= maxBytes;
}

/** A base64url segment as a compact JWS may hold it: no padding, and a length some bytes encode to. */
function isSegment(segment: string): boolean {
  return SEGMENT.test(segment) && segment.length % 4 !== 1;
}

/** Whether a base64url segment's last character leaves its unused bits at zero, as an encoder writes it. */
function isCanonicalSegment(segment: string): boolean {
  const unusedBits = segment.length % 4 === 2 ? 0xf : segment.length % 4 === 3 ? 0x3 : 0;
  return (BASE64URL_ALPHABET.indexOf(segment.at(-1) ?? 'A') & unusedBits) === 0;
}

/** Decodes a segment as an I-JSON object. Errors other than the input's own are thrown. */
function decodeSegment(segment: string, what: 'header' | 'payload'): Decoded {
  let value: unknown;
  try {
    value = decodeIJson(Buffer.from(segment, 'base64url'));
  } catch (error) {
    if (error instanceof IJsonError) return rejection('not-ijson', `${what} ${error.message} (tokens must be I-JSON)`);
    throw error;
  }
  return isJsonObject(value) ? { ok: true, value } : rejection('malformed', `${what} is not a JSON object`);
}

class Signature implements JwsSignature {
  readonly protectedHeader: string;
  readonly signature: string;
  #header: Decoded | undefined;

  constructor(protectedHeader: string, signature: string) {
    this.protectedHeader = protectedHeader;
    this.signature = signature;
  }

  header(): Decoded {
    this.#header ??= decodeSegment(this.protectedHeader, 'header');
    return this.#header;
  }
}

class Compact implements CompactJws {
  readonly ok = true;
  readonly serialization = 'compact';
  readonly text: string;
  readonly identity: string | undefined;
  readonly canonical: boolean;
  readonly payloadSegment: string;
  readonly #protectedHeader: string;
  readonly #signature: string;
  #signatures: readonly [JwsSignature] | undefined;
  #payload: Decoded | undefined;

  constructor(text: string, identity: string | undefined, canonical: boolean, segments: readonly [string, string, string]) {
    this.text = text;
    this.identity = identity;
    this.canonical = canonical;
    [this.#protectedHeader, this.payloadSegment, this.#signature] = segments;
  }

  // Made on first use: a token verified before is judged without its header being decoded again.
  get signatures(): readonly [JwsSignature] {
    this.#signatures ??= [new Signature(this.#protectedHeader, this.#signature)];
    return this.#signatures;
  }

  payload(): Decoded {
    this.#payload ??= decodeSegment(this.payloadSegment, 'payload');
    return this.#payload;
  }
}

/** The General serialization as twokey writes it: members in this order, no whitespace. */
export function generalJson(
  payload: string,
  signatures: readonly { readonly protectedHeader: string; readonly signature: string }[],
): string {
  return JSON.stringify({ payload, signatures: signatures.map((s) => ({ protected: s.protectedHeader, signature: s.signature })) });
}

const canonicalSignature = (signature: string) =>
  isCanonicalSegment(signature) ? signature : Buffer.from(signature, 'base64url').toString('base64url');

class General implements GeneralJws {
  readonly ok = true;
  readonly serialization = 'general';
  readonly text: string;
  readonly identity: string;
  readonly canonical: boolean;
  readonly signatures: readonly [JwsSignature] | readonly [JwsSignature, JwsSignature];
  readonly payloadSegment: string;
  #payload: Decoded | undefined;

  constructor(text: string, payloadSegment: string, signatures: readonly [JwsSignature] | readonly [JwsSignature, JwsSignature]) {
    this.text = text;
    this.payloadSegment = payloadSegment;
    this.signatures = signatures;
    this.identity = generalJson(
      payloadSegment,
      signatures.map((s) => ({ protectedHeader: s.protectedHeader, signature: canonicalSignature(s.signature) })),
    );
    this.canonical = this.identity === text;
  }

  payload(): Decoded {
    this.#payload ??= decodeSegment(this.payloadSegment, 'payload');
    return this.#payload;
  }
}

/**
 * The General form written exactly as twokey writes it, read without the strict parser: a text
 * equal to the serialization of what JSON.parse found in it can hold no duplicate member, no other
 * member and nothing else I-JSON forbids. Anything else takes the strict path.
 */
function canonicalGeneral(text: string): GeneralJws | undefined {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isJsonObject(document) || typeof document.payload !== 'string' || !isSegment(document.payload)) return undefined;
  const { signatures } = document;
  if (!Array.isArray(signatures) || signatures.length === 0 || signatures.length > MAX_SIGNATURES) return undefined;
  const read: JwsSignature[] = [];
  for (const entry of signatures) {
    if (!isJsonObject(entry)) return undefined;
    const { protected: protectedHeader, signature } = entry;
    if (typeof protectedHeader !== 'string' || !isSegment(protectedHeader) || typeof signature !== 'string' || !isSegment(signature)) {
      return undefined;
    }
    read.push(new Signature(protectedHeader, signature));
  }
  const token = new General(text, document.payload, read as unknown as readonly [JwsSignature] | readonly [JwsSignature, JwsSignature]);
  return token.canonical ? token : undefined;
}

/** Reads a JSON text as a JWS in the General serialization: strict I-JSON, only the members the form has. */
function parseGeneral(text: string): TokenParse {
  const canonical = canonicalGeneral(text);
  if (canonical !== undefined) return canonical;
  let document: unknown;
  try {
    document = decodeIJson(Buffer.from(text, 'utf8'));
  } catch (error) {
    if (error instanceof IJsonError) return rejection('not-ijson', `JSON serialization ${error.message} (tokens must be I-JSON)`);
    throw error;
  }
  if (!isJsonObject(document)) return rejection('malformed', 'JSON serialization is not an object');
  const extra = Object.keys(document).filter((name) => name !== 'payload' && name !== 'signatures');
  if (extra.length > 0) {
    return rejection(
      'malformed',
      `JSON serialization has members other than payload and signatures (${extra.slice(0, 3).join(', ')}); only the General form with protected headers is read`,
    );
  }
  const { payload, signatures } = document;
  if (typeof payload !== 'string' || !isSegment(payload)) return rejection('malformed', 'payload is not a base64url string');
  if (!Array.isArray(signatures) || signatures.length === 0 || signatures.length > MAX_SIGNATURES) {
    return rejection('malformed', `signatures must be a list of 1 to ${MAX_SIGNATURES} signatures`);
  }
  const read: JwsSignature[] = [];
  for (const [index, entry] of signatures.entries()) {
    if (!isJsonObject(entry)) return rejection('malformed', `signatures[${index}] is not an object`);
    const members = Object.keys(entry).filter((name) => name !== 'protected' && name !== 'signature');
    if (members.length > 0) {
      return rejection(
        'malformed',
        `signatures[${index}] has ${members.includes('header') ? 'an unprotected header' : `member ${members[0]}`}; only protected and signature are read`,
      );
    }
    const { protected: protectedHeader, signature } = entry;
    if (typeof protectedHeader !== 'string' || !isSegment(protectedHeader) || typeof signature !== 'string' || !isSegment(signature)) {
      return rejection('malformed', `signatures[${index}] needs a base64url protected header and signature`);
    }
    read.push(new Signature(protectedHeader, signature));
  }
  return new General(text, payload, read as unknown as readonly [JwsSignature] | readonly [JwsSignature, JwsSignature]);
}

/** Reads an annotation value as a JWS of at most `maxBytes` bytes: compact, or a JSON object in the General serialization. */
export function parseToken(value: string, maxBytes: number): TokenParse {
  // Whitespace around a token (a YAML block scalar's newline) is not part of it.
  const text = value.trim();
  if (!withinSize(text, maxBytes)) return rejection('too-large', `token is larger than ${maxBytes} bytes`);
  if (text.startsWith('{')) return parseGeneral(text);
  const segments = text.split('.');
  if (segments.length !== 3) return rejection('malformed', `has ${segments.length} segments, a compact JWS has 3`);
  const [header, payload, signature] = segments as [string, string, string];
  // An empty signature is left for the header checks to name (alg "none" tokens have one).
  if (!isSegment(header) || !isSegment(payload) || (signature !== '' && !isSegment(signature))) {
    return rejection('malformed', 'is not base64url-encoded compact JWS');
  }
  let identity: string | undefined;
  if (signature !== '') {
    identity = `${header}.${payload}.${canonicalSignature(signature)}`;
  }
  return new Compact(text, identity, identity === value, [header, payload, signature]);
}
