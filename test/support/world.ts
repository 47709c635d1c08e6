/**
 * A small world for tests: an issuer with keys, a policy, objects shaped as kube-apiserver sends
 * them, and approvals minted for them.
 */
import { readFileSync } from 'node:fs';
import type { JWK } from 'jose';
import type { Binding } from '../../src/change/claims.ts';
import { type Action, deploySpec, digestOf } from '../../src/change/digest.ts';
import type { ConfigSnapshot } from '../../src/config/store.ts';
import type { DecisionContext } from '../../src/decision/decide.ts';
import { NO_CLUSTER_VIEW } from '../../src/decision/gate.ts';
import type { JsonObject } from '../../src/json.ts';
import { assertNoSharedKeys, loadApproverKeys } from '../../src/keys/approvers.ts';
import { importJwks, KeyRing } from '../../src/keys/jwks.ts';
import { countersign, generateIssuerKey, localSigner, mintApproval, mintBreakGlass } from '../../src/keys/signing.ts';
import { type AdmissionRequest, type AdmissionReviewWire, toAdmissionRequest } from '../../src/kubernetes/admission.ts';
import { type OwnerIdentity, qualifiedResource, resourceForKind } from '../../src/kubernetes/objects.ts';
import { buildAdmissionReview } from '../../src/kubernetes/review-builder.ts';
import { policyFromDocument } from '../../src/policy/load.ts';
import type { Policy } from '../../src/policy/policy.ts';
import { parseToken } from '../../src/token/jws.ts';

export const ISSUER = 'https://change.example.com';
export const BREAK_GLASS_ISSUER = 'https://break-glass.example.com';
export const CLUSTER = 'prod-eu-1';
export const NOW = 1_800_000_000;

export interface Issuer {
  readonly issuer: string;
  readonly privateJwk: JWK;
  readonly jwks: { keys: JWK[] };
}

export async function makeIssuer(issuer = ISSUER, alg: 'EdDSA' | 'ES256' = 'EdDSA', kid?: string): Promise<Issuer> {
  const pair = await generateIssuerKey(alg, kid);
  return { issuer, ...pair };
}

export function makePolicy(document: Record<string, unknown> = {}): Policy {
  return policyFromDocument(
    {
      cluster: CLUSTER,
      issuers: [{ issuer: ISSUER, jwksFile: 'jwks.json' }],
      critical: { namespaces: ['payments'] },
      ...document,
    },
    '/etc/twokey',
  );
}

export async function makeSnapshot(issuers: Issuer[], policy = makePolicy()): Promise<ConfigSnapshot> {
  const sets = await Promise.all(issuers.map((i) => importJwks(i.issuer, i.jwks, 'test')));
  return { policy, keys: new KeyRing(sets) };
}

export function deployment(
  options: {
    name?: string;
    namespace?: string;
    image?: string;
    replicas?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid?: string;
  } = {},
): JsonObject {
  const name = options.name ?? 'api';
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: options.namespace ?? 'payments',
      uid: options.uid ?? '8a1e598b-cc4b-49b7-a465-bee6204c18db',
      generation: 1,
      creationTimestamp: '2026-11-27T08:52:31Z',
      labels: { app: name, ...options.labels },
      annotations: { ...options.annotations },
    },
    spec: {
      replicas: options.replicas ?? 3,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name,
              image: options.image ?? 'registry.example.com/api:1.0.0',
              imagePullPolicy: 'IfNotPresent',
            },
          ],
        },
      },
      strategy: {
        type: 'RollingUpdate',
        rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
      },
    },
    status: {},
  };
}

export function namespaceObject(
  name: string,
  options: {
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    uid?: string;
  } = {},
): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      uid: options.uid ?? `uid-${name}-1`,
      resourceVersion: '123',
      labels: { 'kubernetes.io/metadata.name': name, ...options.labels },
      annotations: { ...options.annotations },
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export function withAnnotations(object: JsonObject, annotations: Record<string, string>): JsonObject {
  const copy = structuredClone(object);
  const meta = copy.metadata as JsonObject;
  meta.annotations = {
    ...(meta.annotations as Record<string, string>),
    ...annotations,
  };
  return copy;
}

/** Approval annotations for tokens by name: `approval.twokey.dev/<name>`. */
export function approvalAnnotations(tokens: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(tokens).map(([name, token]) => [`approval.twokey.dev/${name}`, token]));
}

export function withLabels(object: JsonObject, labels: Record<string, string | undefined>): JsonObject {
  const copy = structuredClone(object);
  const meta = copy.metadata as JsonObject;
  const merged: Record<string, string> = {
    ...(meta.labels as Record<string, string>),
  };
  for (const [k, v] of Object.entries(labels)) {
    if (v === undefined) delete merged[k];
    else merged[k] = v;
  }
  meta.labels = merged;
  return copy;
}

export function withOwners(object: JsonObject, owners: unknown[]): JsonObject {
  const copy = structuredClone(object);
  (copy.metadata as JsonObject).ownerReferences = owners;
  return copy;
}

export interface ReviewOptions {
  operation: 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
  object?: JsonObject | null;
  oldObject?: JsonObject | null;
  user?: string;
  dryRun?: boolean;
  subResource?: string;
  /** Omit `name`, as for items of a deletecollection. */
  noName?: boolean;
  resource?: { group: string; version: string; resource: string; kind: string };
}

/** An AdmissionReview v1 exactly as kube-apiserver sends it (docs/kube-apiserver.md, "The request"). */
export function admissionReview(options: ReviewOptions): AdmissionReviewWire {
  return buildAdmissionReview({
    operation: options.operation,
    object: options.object ?? null,
    oldObject: options.oldObject ?? null,
    username: options.user ?? 'deployer@example.com',
    groups: ['system:authenticated'],
    dryRun: options.dryRun ?? false,
    ...(options.subResource ? { subResource: options.subResource } : {}),
    ...(options.noName ? { omitName: true } : {}),
    ...(options.resource ? { resource: options.resource } : {}),
  });
}

export function request(options: ReviewOptions): AdmissionRequest {
  return toAdmissionRequest(admissionReview(options));
}

/**
 * The binding of an approval of `object`: for a deploy, its spec; for a delete, its uid; for an
 * unprotect, its uid (the live object's: an UPDATE keeps it) and its label and owners as the
 * change leaves them, so `object` is the new object.
 */
export function bindingFor(action: Action, object: JsonObject): Binding {
  const meta = object.metadata as JsonObject;
  const kind = object.kind as string;
  const gr = resourceForKind(object.apiVersion as string, kind);
  if (!gr) throw new Error(`no resource for ${kind}`);
  const target = {
    resource: qualifiedResource(gr),
    namespace: kind === 'Namespace' ? '' : (meta.namespace as string),
    name: meta.name as string,
  };
  const uid = meta.uid as string;
  // Read here as the README says, not with src's accessors, so the tests stand apart from them.
  const critical = (meta.labels as Record<string, string> | undefined)?.['twokey.dev/critical'] === 'true';
  const owners = ((meta.ownerReferences as OwnerIdentity[] | undefined) ?? []).map(({ apiVersion, kind, name, uid }) => ({
    apiVersion,
    kind,
    name,
    uid,
  }));
  const digest =
    action === 'deploy'
      ? digestOf({ ...target, action, spec: deploySpec(object) })
      : action === 'delete'
        ? digestOf({ ...target, action, uid })
        : digestOf({ ...target, action, uid, critical, owners });
  return { action, ...target, digest };
}

export interface ApproveOptions {
  approver: string;
  change?: string;
  requester?: string;
  ttlSeconds?: number;
  now?: number;
  audience?: string;
  binding?: Partial<Binding>;
}

export async function approve(issuer: Issuer, action: Action, object: JsonObject, options: ApproveOptions): Promise<string> {
  return mintApproval({
    privateJwk: issuer.privateJwk,
    issuer: issuer.issuer,
    audience: options.audience ?? CLUSTER,
    approver: options.approver,
    change: options.change ?? 'CHG0031337',
    binding: { ...bindingFor(action, object), ...options.binding },
    ttlSeconds: options.ttlSeconds ?? 3600,
    ...(options.requester !== undefined ? { requester: options.requester } : {}),
    now: options.now ?? NOW - 60,
  });
}

/** A captured AdmissionReview sample from test/fixtures/admission (see SOURCES.md there). */
export interface FixtureReview {
  [key: string]: unknown;
  request: { uid: string; [key: string]: unknown };
}

export function fixture(name: string): FixtureReview {
  return JSON.parse(readFileSync(new URL(`../fixtures/admission/${name}`, import.meta.url), 'utf8'));
}

/** An approver with a countersigning key of their own. */
export interface Approver {
  readonly identity: string;
  readonly privateJwk: JWK;
  readonly jwks: { keys: JWK[] };
}

export async function makeApprover(identity: string, kid = `${identity}-1`, alg: 'EdDSA' | 'ES256' = 'EdDSA'): Promise<Approver> {
  const pair = await generateIssuerKey(alg, kid);
  return { identity, ...pair };
}

/** The registry entry of approvers, their keys written in the policy. */
export function registryEntry(approver: Approver, groups: string[] = [], extraKeys: JWK[] = []) {
  return { identity: approver.identity, jwks: { keys: [...approver.jwks.keys, ...extraKeys] }, groups };
}

/** A snapshot whose policy may hold an approvers registry, its keys loaded as the server loads them. */
export async function makeRegistrySnapshot(issuers: Issuer[], policy: Policy): Promise<ConfigSnapshot> {
  const sets = await Promise.all(issuers.map((i) => importJwks(i.issuer, i.jwks, 'test')));
  const approvers = await loadApproverKeys(policy);
  assertNoSharedKeys(approvers, sets);
  return { policy, keys: new KeyRing(sets, approvers) };
}

/** The token countersigned by `approver` (their own key, or `key` when given), as twokey countersign prints it. */
export async function countersigned(approver: Approver, token: string, key: JWK = approver.privateJwk): Promise<string> {
  const parsed = parseToken(token, 1 << 20);
  if (!parsed.ok) throw new Error(parsed.detail);
  return (await countersign(parsed, localSigner(key))).json;
}

export interface BreakGlassOptions {
  approver: string;
  incident?: string;
  requester?: string;
  ttlSeconds?: number;
  now?: number;
  audience?: string;
  issuer?: string;
}

/** A break-glass token for the given changes, signed with `signer`'s key (the break-glass issuer's, unless a test says otherwise). */
export async function breakGlass(signer: Issuer, changes: Binding[], options: BreakGlassOptions): Promise<string> {
  return mintBreakGlass({
    privateJwk: signer.privateJwk,
    issuer: options.issuer ?? signer.issuer,
    audience: options.audience ?? CLUSTER,
    approver: options.approver,
    incident: options.incident ?? 'INC-123',
    changes,
    ttlSeconds: options.ttlSeconds ?? 1800,
    ...(options.requester !== undefined ? { requester: options.requester } : {}),
    now: options.now ?? NOW - 60,
  });
}

/** A policy document's break-glass section for the break-glass issuer. */
export const BREAK_GLASS_POLICY = { issuer: BREAK_GLASS_ISSUER, jwksFile: 'break-glass.json' };

/** An ordinary issuer and the break-glass issuer, and the key ring that trusts both. */
export interface BreakGlassIssuers {
  readonly issuer: Issuer;
  readonly glass: Issuer;
  readonly keys: KeyRing;
}

export async function makeBreakGlassIssuers(): Promise<BreakGlassIssuers> {
  const issuer = await makeIssuer();
  const glass = await makeIssuer(BREAK_GLASS_ISSUER, 'EdDSA', 'glass-1');
  const keys = new KeyRing(
    await Promise.all([importJwks(issuer.issuer, issuer.jwks, 'test'), importJwks(glass.issuer, glass.jwks, 'test')]),
  );
  return { issuer, glass, keys };
}

/** What `decide` takes besides the request, as offline checks give it: no cluster view, not forced critical, at NOW. */
export function offlineContext<Base extends Pick<DecisionContext, 'policy' | 'keys'>>(
  base: Base,
  overrides: Partial<DecisionContext> = {},
): Base & DecisionContext {
  return { ...base, namespaces: NO_CLUSTER_VIEW, forceCritical: false, now: NOW, ...overrides };
}
