/**
 * Which requests are gated (README, "What is gated"), as which action, bound to which digest.
 */
import { describe, expect, it } from 'vitest';
import { canonicalDigest, deploySpec, digestOf } from '../../src/change/digest.ts';
import { CannotJudge, type Gate, gateRequest, type NamespaceState, NO_CLUSTER_VIEW } from '../../src/decision/gate.ts';
import type { JsonObject } from '../../src/json.ts';
import { deployment, makePolicy, namespaceObject, type ReviewOptions, request, withLabels } from '../support/world.ts';

const policy = makePolicy();
const gate = (
  options: ReviewOptions,
  extra: { forceCritical?: boolean; namespaces?: Record<string, NamespaceState> } = {},
): Promise<Gate> =>
  gateRequest(request(options), {
    policy,
    forceCritical: extra.forceCritical ?? false,
    namespaces: extra.namespaces
      ? { criticality: (ns) => extra.namespaces?.[ns] ?? 'not-critical', deletion: () => 'unknown' }
      : NO_CLUSTER_VIEW,
  });
const action = (g: Gate) => (g.gated ? g.aspects.map((a) => a.action).join('+') : 'none');
const digest = (g: Gate) => (g.gated && g.aspects.length === 1 ? g.aspects[0].digest : undefined);
const critical = { 'twokey.dev/critical': 'true' };

function workload(kind: string, apiVersion: string, labels: Record<string, string> = {}, namespace = 'team-a'): JsonObject {
  return { apiVersion, kind, metadata: { name: 'w', namespace, uid: 'uid-w', labels }, spec: { template: { spec: { containers: [] } } } };
}

describe('critical workloads', async () => {
  it.each([
    ['Deployment', 'apps/v1', 'deployments.apps'],
    ['StatefulSet', 'apps/v1', 'statefulsets.apps'],
    ['DaemonSet', 'apps/v1', 'daemonsets.apps'],
    ['CronJob', 'batch/v1', 'cronjobs.batch'],
  ])('gates a labelled %s: deploy on CREATE, delete on DELETE, bound to %s', async (kind, apiVersion, resource) => {
    const object = workload(kind, apiVersion, critical);
    const created = await gate({ operation: 'CREATE', object });
    expect(created).toMatchObject({ gated: true, aspects: [{ action: 'deploy' }], target: { resource, namespace: 'team-a', name: 'w' } });
    expect(digest(created)).toBe(digestOf({ action: 'deploy', resource, namespace: 'team-a', name: 'w', spec: deploySpec(object) }));
    const deleted = await gate({ operation: 'DELETE', oldObject: object });
    expect(action(deleted)).toBe('delete');
    expect(digest(deleted)).toBe(digestOf({ action: 'delete', resource, namespace: 'team-a', name: 'w', uid: 'uid-w' }));
  });

  it('does not gate a labelled object of another kind', async () => {
    const configMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c', namespace: 'payments', labels: critical } };
    const g = await gate({
      operation: 'DELETE',
      oldObject: configMap,
      resource: { group: '', version: 'v1', resource: 'configmaps', kind: 'ConfigMap' },
    });
    expect(g.gated).toBe(false);
  });

  it('takes a workload as critical when its namespace is listed in the policy', async () => {
    expect(action(await gate({ operation: 'CREATE', object: deployment({ namespace: 'payments' }) }))).toBe('deploy');
    expect(action(await gate({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }))).toBe('none');
  });

  it('takes a workload as critical when its namespace is critical in the cluster view', async () => {
    const object = deployment({ namespace: 'team-a' });
    expect(action(await gate({ operation: 'CREATE', object }, { namespaces: { 'team-a': 'critical' } }))).toBe('deploy');
  });

  it('takes every workload as critical on /validate/critical', async () => {
    expect(action(await gate({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }, { forceCritical: true }))).toBe(
      'deploy',
    );
  });

  it('treats a label value other than "true" as not critical', async () => {
    expect(action(await gate({ operation: 'CREATE', object: workload('Deployment', 'apps/v1', { 'twokey.dev/critical': 'yes' }) }))).toBe(
      'none',
    );
  });

  it('gates an UPDATE that adds the label and changes the spec as a deploy', async () => {
    const old = deployment({ namespace: 'team-a' });
    const object = withLabels(deployment({ namespace: 'team-a', image: 'x:2' }), critical);
    expect(action(await gate({ operation: 'UPDATE', object, oldObject: old }))).toBe('deploy');
    expect(action(await gate({ operation: 'UPDATE', object: withLabels(old, critical), oldObject: old }))).toBe('none');
  });

  it('does not take removing a workload label as unprotect while the namespace stays critical', async () => {
    const old = deployment({ namespace: 'payments', labels: critical });
    expect(action(await gate({ operation: 'UPDATE', object: withLabels(old, { 'twokey.dev/critical': undefined }), oldObject: old }))).toBe(
      'none',
    );
  });

  it('gates every aspect of an UPDATE: a spec changed with the owners or the label is a deploy and an unprotect', async () => {
    const old = deployment({ namespace: 'team-a', labels: critical });
    const newImage = deployment({ namespace: 'team-a', labels: critical, image: 'x:2' });
    const owned = structuredClone(newImage);
    (owned.metadata as JsonObject).ownerReferences = [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: 'uid-o' }];
    expect(action(await gate({ operation: 'UPDATE', object: owned, oldObject: old }))).toBe('deploy+unprotect');
    const unlabelled = withLabels(newImage, { 'twokey.dev/critical': undefined });
    expect(action(await gate({ operation: 'UPDATE', object: unlabelled, oldObject: old }))).toBe('deploy+unprotect');
    expect(action(await gate({ operation: 'UPDATE', object: newImage, oldObject: old }))).toBe('deploy');
  });

  it('binds an unprotect to the old object uid and to the label and owners the new object carries', async () => {
    const old = deployment({ namespace: 'team-a', labels: critical, uid: 'uid-old' });
    const unlabelled = withLabels(old, { 'twokey.dev/critical': undefined });
    (unlabelled.metadata as JsonObject).uid = 'uid-claimed-by-the-request';
    const subject = { action: 'unprotect', resource: 'deployments.apps', namespace: 'team-a', name: 'api', uid: 'uid-old' } as const;
    const g = await gate({ operation: 'UPDATE', object: unlabelled, oldObject: old });
    expect(action(g)).toBe('unprotect');
    // The subject written out, as the README gives it, not through digestOf.
    expect(digest(g)).toBe(canonicalDigest({ ...subject, critical: false, owners: [] }));
    const owner = { apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: 'uid-o' };
    const owned = structuredClone(old);
    (owned.metadata as JsonObject).ownerReferences = [{ ...owner, controller: true }];
    expect(digest(await gate({ operation: 'UPDATE', object: owned, oldObject: old }))).toBe(
      canonicalDigest({ ...subject, critical: true, owners: [owner] }),
    );
  });

  it('compares owners by apiVersion, kind, name and uid: other fields changing is no new owner', async () => {
    const owner = { apiVersion: 'v1', kind: 'ConfigMap', name: 'o', uid: 'uid-o' };
    const withOwners = (owners: unknown[]) => {
      const copy = deployment({ namespace: 'team-a', labels: critical });
      (copy.metadata as JsonObject).ownerReferences = owners;
      return copy;
    };
    const old = withOwners([owner]);
    expect(action(await gate({ operation: 'UPDATE', object: withOwners([{ ...owner, blockOwnerDeletion: true }]), oldObject: old }))).toBe(
      'none',
    );
    for (const field of ['apiVersion', 'kind', 'name', 'uid'] as const) {
      const changed = withOwners([{ ...owner, [field]: `${owner[field]}-2` }]);
      expect(action(await gate({ operation: 'UPDATE', object: changed, oldObject: old }))).toBe('unprotect');
    }
  });
});

describe('namespaces', async () => {
  const labelled = namespaceObject('team-a', { labels: critical });

  it('does not gate creating a critical namespace', async () => {
    expect(action(await gate({ operation: 'CREATE', object: labelled }))).toBe('none');
  });

  it('gates deleting a labelled namespace, with namespace "" in the subject', async () => {
    const g = await gate({ operation: 'DELETE', oldObject: labelled });
    expect(g).toMatchObject({
      gated: true,
      aspects: [{ action: 'delete' }],
      target: { resource: 'namespaces', namespace: '', name: 'team-a' },
    });
  });

  it('gates deleting a namespace listed in the policy, label or not', async () => {
    expect(action(await gate({ operation: 'DELETE', oldObject: namespaceObject('payments') }))).toBe('delete');
    expect(action(await gate({ operation: 'DELETE', oldObject: namespaceObject('scratch') }))).toBe('none');
  });

  it('gates removing the label as unprotect, and not an update that keeps it', async () => {
    expect(
      action(await gate({ operation: 'UPDATE', object: withLabels(labelled, { 'twokey.dev/critical': undefined }), oldObject: labelled })),
    ).toBe('unprotect');
    expect(action(await gate({ operation: 'UPDATE', object: withLabels(labelled, { owner: 'x' }), oldObject: labelled }))).toBe('none');
  });

  it('does not take removing the label of a listed namespace as unprotect (it stays critical)', async () => {
    const payments = namespaceObject('payments', { labels: critical });
    expect(action(await gate({ operation: 'UPDATE', object: namespaceObject('payments'), oldObject: payments }))).toBe('none');
  });

  it('does not gate status and finalize updates that keep the label and the owners', async () => {
    expect(action(await gate({ operation: 'UPDATE', object: labelled, oldObject: labelled, subResource: 'finalize' }))).toBe('none');
    expect(action(await gate({ operation: 'UPDATE', object: labelled, oldObject: labelled, subResource: 'status' }))).toBe('none');
  });
});

describe('requests that are never gated', async () => {
  it('does not gate the scale subresource', async () => {
    const scale = { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: 'api', namespace: 'payments' }, spec: { replicas: 5 } };
    const g = await gate({
      operation: 'UPDATE',
      object: scale,
      oldObject: scale,
      subResource: 'scale',
      resource: { group: 'apps', version: 'v1', resource: 'deployments', kind: 'Scale' },
    });
    expect(g.gated).toBe(false);
  });

  it('does not gate CONNECT', async () => {
    const options = { apiVersion: 'v1', kind: 'PodExecOptions', metadata: { name: 'p', namespace: 'payments' } };
    expect(
      (
        await gate({
          operation: 'CONNECT',
          object: options,
          resource: { group: 'apps', version: 'v1', resource: 'deployments', kind: 'X' },
        })
      ).gated,
    ).toBe(false);
  });

  it.each(['system:serviceaccount:kube-system:generic-garbage-collector', 'system:serviceaccount:kube-system:namespace-controller'])(
    'does not exempt %s deleting a critical namespace (an owner put on it would delete it ungated)',
    async (user) => {
      const g = await gate({ operation: 'DELETE', oldObject: namespaceObject('payments'), user });
      expect(action(g)).toBe('delete');
    },
  );

  it('exempts the cleanup finishing a namespace whose deletion began (approved then), and nobody else', async () => {
    const terminating = namespaceObject('payments');
    (terminating.metadata as Record<string, unknown>).deletionTimestamp = '2026-11-27T09:00:00Z';
    const controller = 'system:serviceaccount:kube-system:namespace-controller';
    expect((await gate({ operation: 'DELETE', oldObject: terminating, user: controller })).gated).toBe(false);
    expect(await gate({ operation: 'DELETE', oldObject: terminating, user: 'alice@example.com' })).toMatchObject({ gated: true });
  });
});

describe('what cannot be judged is refused', async () => {
  const judge = (options: ReviewOptions, extra?: Parameters<typeof gate>[1]) => gate(options, extra);

  it('when the namespace is unknown to the cluster view and the answer depends on it', async () => {
    const unknown = { 'team-a': 'unknown' as const };
    await expect(judge({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }, { namespaces: unknown })).rejects.toThrow(
      CannotJudge,
    );
    await expect(judge({ operation: 'CREATE', object: deployment({ namespace: 'team-a' }) }, { namespaces: unknown })).rejects.toThrow(
      /does not know the labels of namespace "team-a"/,
    );
  });

  it('but not when the object settles it', async () => {
    const unknown = { 'team-a': 'unknown' as const };
    expect(
      action(await gate({ operation: 'CREATE', object: deployment({ namespace: 'team-a', labels: critical }) }, { namespaces: unknown })),
    ).toBe('deploy');
    const old = deployment({ namespace: 'team-a' });
    expect(action(await gate({ operation: 'UPDATE', object: withLabels(old, { a: 'b' }), oldObject: old }, { namespaces: unknown }))).toBe(
      'none',
    );
  });

  it('when a DELETE carries no oldObject', async () => {
    await expect(judge({ operation: 'DELETE', object: deployment() })).rejects.toThrow(/no oldObject/);
  });

  it('when labels are not strings', async () => {
    const broken = deployment({ namespace: 'team-a' });
    (broken.metadata as JsonObject).labels = { 'twokey.dev/critical': true };
    await expect(judge({ operation: 'CREATE', object: broken })).rejects.toThrow(
      /metadata.labels\["twokey.dev\/critical"\] is not a string/,
    );
  });

  it('when the object names another namespace than the request', async () => {
    const object = deployment({ namespace: 'payments' });
    const review = request({ operation: 'CREATE', object });
    const forged = { ...review, namespace: 'team-a' };
    await expect(gateRequest(forged, { policy, forceCritical: true, namespaces: NO_CLUSTER_VIEW })).rejects.toThrow(
      /differs from the request/,
    );
  });

  it.each([
    ['without a uid', { apiVersion: 'v1', kind: 'ConfigMap', name: 'o' }, /object: metadata.ownerReferences\[0\].uid is missing/],
    [
      'with a name that is not a string',
      { apiVersion: 'v1', kind: 'ConfigMap', name: 7, uid: 'u' },
      /ownerReferences\[0\].name is not a string/,
    ],
    ['that is not an object', 'owner', /ownerReferences\[0\] is not an object/],
  ])('when a critical object gets an owner entry %s', async (_how, entry, reason) => {
    const old = deployment({ namespace: 'team-a', labels: critical });
    const object = structuredClone(old);
    (object.metadata as JsonObject).ownerReferences = [entry];
    await expect(judge({ operation: 'UPDATE', object, oldObject: old })).rejects.toThrow(reason);
    // Not on an object that is not critical: nothing there depends on its owners.
    const plain = deployment({ namespace: 'team-a' });
    const plainOwned = structuredClone(plain);
    (plainOwned.metadata as JsonObject).ownerReferences = [entry];
    expect(action(await gate({ operation: 'UPDATE', object: plainOwned, oldObject: plain }))).toBe('none');
  });

  it('when a delete target has no uid', async () => {
    const object = deployment();
    (object.metadata as JsonObject).uid = undefined;
    await expect(judge({ operation: 'DELETE', oldObject: object })).rejects.toThrow(/no metadata.uid/);
  });
});
