/**
 * Where issuer keys come from: a JWKS file (a mounted Secret or ConfigMap) or a JWKS URL,
 * fetched with a timeout and a size bound.
 */
import { readFile } from 'node:fs/promises';
import { TwokeyError } from '../errors.ts';
import type { IssuerPolicy } from '../policy/policy.ts';
import { type IssuerKeySet, importJwks } from './jwks.ts';

export const JWKS_FETCH_TIMEOUT_MS = 5000;
const MAX_JWKS_BYTES = 1024 * 1024;

export function describeSource(issuer: IssuerPolicy): string {
  return issuer.jwks.kind === 'file' ? issuer.jwks.path : issuer.jwks.url.href;
}

export async function readJwksFile(issuer: string, path: string): Promise<IssuerKeySet> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new TwokeyError('ERR_JWKS_INVALID', `cannot read JWKS ${path} for issuer ${issuer}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new TwokeyError('ERR_JWKS_INVALID', `JWKS ${path} for issuer ${issuer} is not JSON`);
  }
  return importJwks(issuer, document, path);
}

export async function fetchJwks(issuer: string, url: URL, timeoutMs = JWKS_FETCH_TIMEOUT_MS): Promise<IssuerKeySet> {
  let response: Response;
  try {
    response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
  } catch (error) {
    const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
    throw new TwokeyError('ERR_JWKS_FETCH', `cannot fetch JWKS ${url.href} for issuer ${issuer}: ${(error as Error).message}${cause}`, {
      cause: error,
    });
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new TwokeyError('ERR_JWKS_FETCH', `JWKS ${url.href} for issuer ${issuer} answered HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > MAX_JWKS_BYTES) {
    await response.body?.cancel();
    throw new TwokeyError('ERR_JWKS_FETCH', `JWKS ${url.href} is larger than ${MAX_JWKS_BYTES} bytes`);
  }
  // Read at most the limit, whatever the server declared (or did not).
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_JWKS_BYTES) {
      await response.body?.cancel().catch(() => {});
      throw new TwokeyError('ERR_JWKS_FETCH', `JWKS ${url.href} is larger than ${MAX_JWKS_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  const body = Buffer.concat(chunks).toString('utf8');
  let document: unknown;
  try {
    document = JSON.parse(body);
  } catch {
    throw new TwokeyError('ERR_JWKS_INVALID', `JWKS ${url.href} for issuer ${issuer} is not JSON`);
  }
  return importJwks(issuer, document, url.href);
}

export async function loadIssuerKeys(issuer: IssuerPolicy): Promise<IssuerKeySet> {
  return issuer.jwks.kind === 'file' ? readJwksFile(issuer.issuer, issuer.jwks.path) : fetchJwks(issuer.issuer, issuer.jwks.url);
}
