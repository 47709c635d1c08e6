/**
 * Tokens whose signatures have verified, remembered by their exact text (the whole serialized
 * value, every signature of a General token included) so that a retried or
 * re-sent approval is not parsed and verified again. Only what does not depend on time, policy or
 * the request is remembered (the decoded header and payload, and the key that verified them):
 * every claim is checked again on each use, so a remembered token is never used past its exp.
 * The cache belongs to one key ring, and a key ring never changes: new keys make a new, empty
 * cache (a refresh that brings the same keys keeps the key ring). Only tokens signed by a trusted
 * key get in, so junk cannot crowd it; it is bounded by entries and by bytes.
 */
import type { CryptoKey } from 'jose';
import type { JsonObject } from '../json.ts';

export interface VerifiedToken {
  readonly header: JsonObject;
  readonly payload: JsonObject;
  readonly key: CryptoKey;
  /** The approver's key that verified its countersignature, when one was checked. */
  readonly counterKey?: CryptoKey;
  /** The token's exp, for eviction. */
  readonly expiresAt: number;
}

export class VerifiedTokens {
  readonly #entries = new Map<string, VerifiedToken>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;

  constructor(options: { maxEntries?: number; maxBytes?: number } = {}) {
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#maxBytes = options.maxBytes ?? 4 * 1024 * 1024;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The remembered verification of `token`, unless it expired (by then it is only dropped). */
  get(token: string, now: number): VerifiedToken | undefined {
    const entry = this.#entries.get(token);
    if (entry === undefined) return undefined;
    this.#entries.delete(token);
    if (now > entry.expiresAt) {
      this.#bytes -= token.length;
      return undefined;
    }
    this.#entries.set(token, entry); // most recently used last
    return entry;
  }

  set(token: string, entry: VerifiedToken): void {
    if (this.#entries.has(token) || token.length > this.#maxBytes) return;
    this.#entries.set(token, entry);
    this.#bytes += token.length;
    for (const [oldest] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= oldest.length;
    }
  }
}
