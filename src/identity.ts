/**
 * Identities (approvers, requesters, the Kubernetes user) are compared in one normal form:
 * Unicode NFKC, then trimmed, then default lower-cased. What still holds whitespace, control,
 * format (zero-width) or separator characters is not an identity: such look-alikes could
 * otherwise pass for a second person.
 */
const FORBIDDEN = /[\p{White_Space}\p{Cc}\p{Cf}\p{Z}\p{Cs}]/u;

export type Identity = string & { readonly __brand: 'Identity' };

export function normalizeIdentity(raw: string): Identity | undefined {
  if (!raw.isWellFormed()) return undefined;
  const normal = raw.normalize('NFKC').trim().toLowerCase();
  if (normal.length === 0 || FORBIDDEN.test(normal)) return undefined;
  return normal as Identity;
}
