/**
 * Reading a policy file: YAML → schema check → normalised Policy. Every problem is reported
 * with the field it concerns, and a file that is not valid is refused as a whole.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Compile } from 'typebox/compile';
import { parse as parseYaml } from 'yaml';
import { TwokeyError } from '../errors.ts';
import { normalizeIdentity } from '../identity.ts';
import { isJsonObject } from '../json.ts';
import { approvalRules, approversPolicy } from './approvers.ts';
import { parseDuration } from './duration.ts';
import { identityPolicy } from './identities.ts';
import {
  BREAK_GLASS_MAX_TTL_LIMIT,
  type BreakGlassPolicy,
  type DeleterRole,
  type IssuerPolicy,
  POLICY_DEFAULTS,
  type Policy,
} from './policy.ts';
import { type PolicyDocument, PolicySchema } from './schema.ts';

const validator = Compile(PolicySchema);

function fieldPath(instancePath: string): string {
  const path = instancePath.replace(/^\//, '').split('/').filter(Boolean);
  return path.length === 0
    ? '(top level)'
    : path
        .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
        .join('')
        .replace(/^\./, '');
}

/** A list of exempt deleters cannot say which role a name plays, which decides where its deletes are exempt. */
const LIST_FORM =
  'exemptDeleters: name each role: {namespaceController: [...], garbageCollector: [...]} (a list cannot say which role a name plays)';

function schemaProblems(document: unknown): string[] {
  const problems: string[] = [];
  const listForm = isJsonObject(document) && Array.isArray(document.exemptDeleters);
  for (const error of validator.Errors(document)) {
    if (error.keyword === 'boolean') continue; // reported once more as additionalProperties
    if (listForm && error.instancePath.startsWith('/exemptDeleters')) {
      problems.push(LIST_FORM);
      continue;
    }
    if (error.keyword === 'additionalProperties') {
      const extra = (error.params as { additionalProperties?: string[] }).additionalProperties ?? [];
      const at = fieldPath(error.instancePath);
      for (const name of extra) problems.push(`${at === '(top level)' ? name : `${at}.${name}`}: unknown field`);
      continue;
    }
    if (error.keyword === 'enum') {
      const allowed = (error.params as { allowedValues?: unknown[] }).allowedValues ?? [];
      problems.push(`${fieldPath(error.instancePath)}: must be one of ${allowed.join(', ')}`);
      continue;
    }
    if (error.keyword === 'pattern' && /maxTtl|clockSkew|refreshInterval|reviewWindow/.test(error.instancePath)) {
      problems.push(`${fieldPath(error.instancePath)}: must be a duration such as 90s, 15m or 24h`);
      continue;
    }
    problems.push(`${fieldPath(error.instancePath)}: ${error.message}`);
  }
  return [...new Set(problems)];
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

function issuerPolicy(
  entry: Pick<PolicyDocument['issuers'][number], 'issuer' | 'jwksFile' | 'jwksUrl' | 'refreshInterval'>,
  at: string,
  baseDir: string,
  problems: string[],
): IssuerPolicy | undefined {
  const refreshSeconds = parseDuration(entry.refreshInterval ?? POLICY_DEFAULTS.jwksRefresh) ?? 300;
  if (refreshSeconds < 10) problems.push(`${at}.refreshInterval: must be at least 10s`);
  if ((entry.jwksFile === undefined) === (entry.jwksUrl === undefined)) {
    problems.push(`${at}: set exactly one of jwksFile and jwksUrl`);
    return undefined;
  }
  if (entry.jwksFile !== undefined) {
    return {
      issuer: entry.issuer,
      jwks: { kind: 'file', path: resolve(baseDir, entry.jwksFile) },
      refreshSeconds,
    };
  }
  let url: URL;
  try {
    url = new URL(entry.jwksUrl as string);
  } catch {
    problems.push(`${at}.jwksUrl: not a URL`);
    return undefined;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) {
    problems.push(`${at}.jwksUrl: must be https (http is allowed only for loopback)`);
    return undefined;
  }
  return { issuer: entry.issuer, jwks: { kind: 'url', url }, refreshSeconds };
}

/**
 * The break-glass issuer: never one of the ordinary issuers (nor the same key source; a key they
 * share is refused when the keys are loaded, config/store.ts), its tokens short-lived.
 */
function breakGlassPolicy(
  entry: NonNullable<PolicyDocument['breakGlass']>,
  ordinary: readonly IssuerPolicy[],
  baseDir: string,
  problems: string[],
): BreakGlassPolicy | undefined {
  const issuer = issuerPolicy(entry, 'breakGlass', baseDir, problems);
  if (ordinary.some((other) => other.issuer === entry.issuer)) {
    problems.push(
      `breakGlass.issuer: ${JSON.stringify(entry.issuer)} is also an ordinary issuer; break-glass needs an issuer and keys of its own`,
    );
  }
  const sameSource = issuer && ordinary.find((other) => JSON.stringify(other.jwks) === JSON.stringify(issuer.jwks));
  if (sameSource)
    problems.push(
      `breakGlass: its JWKS is the one of ordinary issuer ${JSON.stringify(sameSource.issuer)}; break-glass needs keys of its own`,
    );
  const maxTtlSeconds = parseDuration(entry.maxTtl ?? POLICY_DEFAULTS.breakGlassMaxTtl) ?? 0;
  const reviewWindowSeconds = parseDuration(entry.reviewWindow ?? POLICY_DEFAULTS.breakGlassReviewWindow) ?? 0;
  if (maxTtlSeconds <= 0) problems.push('breakGlass.maxTtl: must be longer than 0s');
  if (maxTtlSeconds > BREAK_GLASS_MAX_TTL_LIMIT)
    problems.push('breakGlass.maxTtl: must be at most 4h (a break-glass token is for one incident)');
  if (reviewWindowSeconds <= 0) problems.push('breakGlass.reviewWindow: must be longer than 0s');
  return issuer ? { ...issuer, maxTtlSeconds, reviewWindowSeconds } : undefined;
}

/** Builds the policy from an already-parsed document; `baseDir` resolves relative jwksFile paths. */
export function policyFromDocument(document: unknown, baseDir: string, source = 'policy'): Policy {
  const invalid = (problems: string[]) =>
    new TwokeyError('ERR_POLICY_INVALID', `${source} is not a valid twokey policy: ${problems.join('; ')}`);
  if (!validator.Check(document)) throw invalid(schemaProblems(document));
  const doc: PolicyDocument = document;
  const problems: string[] = [];

  const issuers: IssuerPolicy[] = [];
  doc.issuers.forEach((entry, index) => {
    if (doc.issuers.findIndex((other) => other.issuer === entry.issuer) !== index) {
      problems.push(`issuers[${index}].issuer: ${JSON.stringify(entry.issuer)} is listed twice`);
    }
    const issuer = issuerPolicy(entry, `issuers[${index}]`, baseDir, problems);
    if (issuer) issuers.push(issuer);
  });

  const maxTtlSeconds = parseDuration(doc.approvals?.maxTtl ?? POLICY_DEFAULTS.maxTtl) ?? 0;
  const clockSkewSeconds = parseDuration(doc.approvals?.clockSkew ?? POLICY_DEFAULTS.clockSkew) ?? 0;
  if (maxTtlSeconds <= 0) problems.push('approvals.maxTtl: must be longer than 0s');
  if (maxTtlSeconds > 7 * 24 * 3600) problems.push('approvals.maxTtl: must be at most 168h (approvals are short-lived)');
  if (clockSkewSeconds > 600) problems.push('approvals.clockSkew: must be at most 10m');

  const deleters = (role: DeleterRole): Set<string> => {
    const names = new Set<string>();
    (doc.exemptDeleters?.[role] ?? POLICY_DEFAULTS.exemptDeleters[role]).forEach((name, index) => {
      // Kept exactly as written (compared exactly), but it must be a plausible user name.
      if (normalizeIdentity(name) === undefined || name !== name.trim()) {
        problems.push(`exemptDeleters.${role}[${index}]: ${JSON.stringify(name)} is not a valid user name`);
      } else names.add(name);
    });
    return names;
  };
  const namespaceController = deleters('namespaceController');
  const garbageCollector = deleters('garbageCollector');
  for (const name of namespaceController) {
    if (garbageCollector.has(name)) {
      problems.push(
        `exemptDeleters: ${JSON.stringify(name)} is listed for both roles; a name plays one (the roles are exempt in different places)`,
      );
    }
  }

  const required = doc.approvals?.required ?? POLICY_DEFAULTS.required;
  const identities = identityPolicy(doc.identities, problems);
  const approvers = doc.approvers === undefined ? undefined : approversPolicy(doc.approvers, baseDir, problems);
  const rules = approvalRules(doc.approvals?.rules, approvers, required, problems);
  const countersign = doc.approvals?.countersign ?? false;
  if (countersign && approvers === undefined) {
    problems.push('approvals.countersign: needs an approvers registry (top-level approvers) holding the keys approvers countersign with');
  }
  const breakGlass = doc.breakGlass ? breakGlassPolicy(doc.breakGlass, issuers, baseDir, problems) : undefined;

  if (problems.length > 0) throw invalid(problems);
  return {
    cluster: doc.cluster,
    issuers,
    required,
    maxTtlSeconds,
    clockSkewSeconds,
    algorithms: new Set(doc.approvals?.algorithms ?? POLICY_DEFAULTS.algorithms),
    criticalNamespaces: new Set(doc.critical?.namespaces ?? []),
    exemptDeleters: { namespaceController, garbageCollector },
    mode: doc.mode ?? POLICY_DEFAULTS.mode,
    warnNamespaces: new Set(doc.warnNamespaces ?? []),
    ...(breakGlass ? { breakGlass } : {}),
    maxApprovalAnnotations: doc.limits?.maxApprovalAnnotations ?? POLICY_DEFAULTS.maxApprovalAnnotations,
    maxTokenBytes: doc.limits?.maxTokenBytes ?? POLICY_DEFAULTS.maxTokenBytes,
    ...(identities ? { identities } : {}),
    countersign,
    ...(approvers ? { approvers } : {}),
    approvalRules: rules,
  };
}

export function parsePolicy(text: string, baseDir: string, source = 'policy'): Policy {
  let document: unknown;
  try {
    document = parseYaml(text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new TwokeyError('ERR_POLICY_INVALID', `${source} is not valid YAML: ${detail}`, { cause: error });
  }
  return policyFromDocument(document, baseDir, source);
}

export async function loadPolicyFile(path: string): Promise<Policy> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new TwokeyError('ERR_POLICY_INVALID', `cannot read policy ${path}: ${(error as Error).message}`, { cause: error });
  }
  return parsePolicy(text, dirname(resolve(path)), path);
}
