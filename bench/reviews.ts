/**
 * The reviews the benchmark sends: realistic Deployments (8-20 KB with managedFields and the
 * last-applied annotation), shaped as kube-apiserver sends them.
 */

import type { JWK } from 'jose';
import type { Binding } from '../src/change/claims.ts';
import { deploySpec, digestOf } from '../src/change/digest.ts';
import type { JsonObject } from '../src/json.ts';
import { countersign, localSigner, mintApproval, mintPlanApproval } from '../src/keys/signing.ts';
import { buildAdmissionReview } from '../src/kubernetes/review-builder.ts';
import { encodeProofs, type PlanEntry, planTree, proofAnnotationKey } from '../src/plan/entries.ts';
import { parseToken } from '../src/token/jws.ts';

export const CLUSTER = 'bench-cluster';
export const ISSUER = 'https://change.bench.example';

/** A Deployment like one applied with kubectl, padded with env entries to reach `targetBytes`. */
export function deployment(namespace: string, targetBytes = 10_000, annotations: Record<string, string> = {}): JsonObject {
  const env = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `SETTING_${i}`, value: `value-${i}-${'x'.repeat(24)}` }));
  const make = (count: number): JsonObject => {
    const spec = {
      replicas: 3,
      selector: { matchLabels: { app: 'api' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
      template: {
        metadata: { labels: { app: 'api', tier: 'backend' } },
        spec: {
          containers: [
            {
              name: 'api',
              image: 'registry.example.com/payments/api:1.4.0',
              imagePullPolicy: 'IfNotPresent',
              ports: [{ containerPort: 8080, protocol: 'TCP' }],
              env: env(count),
              resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } },
              readinessProbe: {
                httpGet: { path: '/ready', port: 8080, scheme: 'HTTP' },
                periodSeconds: 5,
                timeoutSeconds: 1,
                successThreshold: 1,
                failureThreshold: 3,
              },
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'File',
            },
          ],
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: 30,
          dnsPolicy: 'ClusterFirst',
          schedulerName: 'default-scheduler',
          securityContext: {},
        },
      },
    };
    return {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {
        name: 'api',
        namespace,
        uid: '5b1f3a52-6f0e-4c4e-9d7a-0c3d2f7e9a11',
        generation: 4,
        creationTimestamp: '2026-11-01T10:00:00Z',
        labels: { app: 'api' },
        annotations: {
          'deployment.kubernetes.io/revision': '4',
          'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify({
            apiVersion: 'apps/v1',
            kind: 'Deployment',
            metadata: { name: 'api', namespace },
            spec,
          }),
          ...annotations,
        },
        managedFields: [
          {
            manager: 'kubectl-client-side-apply',
            operation: 'Update',
            apiVersion: 'apps/v1',
            time: '2026-11-20T10:00:00Z',
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:spec': { 'f:template': { 'f:spec': { 'f:containers': {} } } } },
          },
          {
            manager: 'kube-controller-manager',
            operation: 'Update',
            apiVersion: 'apps/v1',
            time: '2026-11-20T10:00:05Z',
            fieldsType: 'FieldsV1',
            fieldsV1: { 'f:status': {} },
            subresource: 'status',
          },
        ],
      },
      spec,
      status: {},
    };
  };
  // Grow the env list until the object reaches the target size.
  let count = 4;
  let object = make(count);
  while (JSON.stringify(object).length < targetBytes) {
    count = Math.ceil(count * Math.max(1.05, targetBytes / JSON.stringify(object).length));
    object = make(count);
  }
  return object;
}

export function bindingFor(object: JsonObject): Binding {
  const meta = object.metadata as { namespace: string; name: string };
  const target = { resource: 'deployments.apps', namespace: meta.namespace, name: meta.name };
  return { action: 'deploy', ...target, digest: digestOf({ ...target, action: 'deploy', spec: deploySpec(object) }) };
}

export async function approvals(
  privateJwk: JWK,
  object: JsonObject,
  approvers: readonly string[],
  change = 'CHG0031337',
): Promise<Record<string, string>> {
  const binding = bindingFor(object);
  const entries = await Promise.all(
    approvers.map(async (approver) => [
      `approval.twokey.dev/${approver.split('@')[0]}`,
      await mintApproval({ privateJwk, issuer: ISSUER, audience: CLUSTER, approver, change, binding, ttlSeconds: 8 * 3600 }),
    ]),
  );
  return Object.fromEntries(entries);
}

/** The approvals, each countersigned by its approver's key. */
export async function countersigned(
  approvalsByKey: Record<string, string>,
  approverKeys: Readonly<Record<string, JWK>>,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [key, token] of Object.entries(approvalsByKey)) {
    const parsed = parseToken(token, 1 << 20);
    const approver = Object.keys(approverKeys).find((a) => key === `approval.twokey.dev/${a.split('@')[0]}`);
    const jwk = approver === undefined ? undefined : approverKeys[approver];
    if (!parsed.ok || jwk === undefined) throw new Error(`cannot countersign ${key}`);
    out[key] = (await countersign(parsed, localSigner(jwk))).json;
  }
  return out;
}

/**
 * Approvals of a plan of `size` entries that holds the object's deploy among other Deployments,
 * one token per approver, and the proof of the object's entry: what `twokey attach --plan` writes.
 */
export async function planApprovals(
  privateJwk: JWK,
  object: JsonObject,
  approvers: readonly string[],
  size: number,
  change = 'CHG0031337',
): Promise<Record<string, string>> {
  const own = bindingFor(object);
  const others: PlanEntry[] = Array.from({ length: size - 1 }, (_, i) => ({
    ...own,
    name: `service-${String(i).padStart(4, '0')}`,
    digest: `sha256:${String(i).padStart(64, '0')}`,
  }));
  const tree = planTree([own, ...others]);
  const index = tree.entries.findIndex((e) => e.name === own.name);
  const proofs = encodeProofs({ plan: tree.digest, size: tree.entries.length, proofs: [tree.proof(index)] });
  const tokens = await Promise.all(
    approvers.map(async (approver) => [
      `approval.twokey.dev/${approver.split('@')[0]}`,
      await mintPlanApproval({
        privateJwk,
        issuer: ISSUER,
        audience: CLUSTER,
        approver,
        change,
        plan: tree.digest,
        entries: tree.entries.length,
        ttlSeconds: 8 * 3600,
      }),
    ]),
  );
  return { ...Object.fromEntries(tokens), [proofAnnotationKey(tree.digest)]: proofs };
}

export function withAnnotations(object: JsonObject, annotations: Record<string, string>): JsonObject {
  const metadata = object.metadata as JsonObject;
  return { ...object, metadata: { ...metadata, annotations: { ...(metadata.annotations as Record<string, string>), ...annotations } } };
}

export function reviewBody(operation: 'CREATE' | 'UPDATE', object: JsonObject, oldObject: JsonObject | null = null): string {
  return JSON.stringify(
    buildAdmissionReview({ operation, object, oldObject, username: 'deployer@example.com', groups: ['system:authenticated'] }),
  );
}
