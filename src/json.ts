/**
 * JSON as decoded from untrusted input (a review, a token, a policy, a JWKS): what is an object.
 */

/** A JSON object as decoded (never a class instance, never an array). */
export type JsonObject = { [key: string]: unknown };

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
