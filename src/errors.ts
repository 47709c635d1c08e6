/**
 * Typed errors with stable codes. Callers branch on `code`, never on message text.
 */
export type TwokeyErrorCode =
  | 'ERR_POLICY_INVALID'
  | 'ERR_JWKS_INVALID'
  | 'ERR_JWKS_FETCH'
  | 'ERR_REVIEW_INVALID'
  | 'ERR_MANIFEST_INVALID'
  | 'ERR_KEY_INVALID'
  | 'ERR_USAGE'
  | 'ERR_CLUSTER'
  | 'ERR_TOKEN_INVALID'
  | 'ERR_SIGNER';

export class TwokeyError extends Error {
  readonly code: TwokeyErrorCode;

  constructor(code: TwokeyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TwokeyError';
    this.code = code;
  }
}

export function isTwokeyError(value: unknown, code?: TwokeyErrorCode): value is TwokeyError {
  return value instanceof TwokeyError && (code === undefined || value.code === code);
}

/** A one-line description of anything thrown, for logs and refusals. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
