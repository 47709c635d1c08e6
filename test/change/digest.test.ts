import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { changedDeployDigest, deployDigest, deploySpec, digestOf, LARGE_SUBJECT_CHARS } from '../../src/change/digest.ts';
import { DigestWorker } from '../../src/change/digest-worker.ts';
import { deployment } from '../support/world.ts';

const sha = (text: string) => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

describe('change digests (README, "The change digest")', () => {
  it('digests a delete subject as SHA-256 of its RFC 8785 canonical JSON', () => {
    const digest = digestOf({ action: 'delete', resource: 'namespaces', namespace: '', name: 'payments', uid: 'uid-1' });
    // Members sorted by UTF-16 code units, no whitespace.
    expect(digest).toBe(sha('{"action":"delete","name":"payments","namespace":"","resource":"namespaces","uid":"uid-1"}'));
  });

  it('digests an unprotect subject with the state it leaves: critical, and owners by identity, sorted, once each', () => {
    const owner = (uid: string, name = 'db') => ({ apiVersion: 'example.com/v1', kind: 'Database', name, uid });
    // Extra fields are not part of an owner's identity; a repeated owner is one owner.
    const owners = [{ ...owner('u-2'), controller: true, blockOwnerDeletion: true }, owner('u-1', 'b'), owner('u-1', 'a'), owner('u-2')];
    const digest = digestOf({
      action: 'unprotect',
      resource: 'deployments.apps',
      namespace: 'payments',
      name: 'api',
      uid: 'u',
      critical: false,
      owners,
    });
    expect(digest).toBe(
      sha(
        '{"action":"unprotect","critical":false,"name":"api","namespace":"payments","owners":[' +
          '{"apiVersion":"example.com/v1","kind":"Database","name":"a","uid":"u-1"},' +
          '{"apiVersion":"example.com/v1","kind":"Database","name":"b","uid":"u-1"},' +
          '{"apiVersion":"example.com/v1","kind":"Database","name":"db","uid":"u-2"}' +
          '],"resource":"deployments.apps","uid":"u"}',
      ),
    );
    const none = digestOf({
      action: 'unprotect',
      resource: 'namespaces',
      namespace: '',
      name: 'team-a',
      uid: 'u',
      critical: true,
      owners: [],
    });
    expect(none).toBe(
      sha('{"action":"unprotect","critical":true,"name":"team-a","namespace":"","owners":[],"resource":"namespaces","uid":"u"}'),
    );
  });

  it('canonicalises nested members, numbers and non-ASCII text as JCS does', () => {
    const spec = { z: [1e21, 0.5, -0, 100], a: { é: 'ü', B: true, '\u20ac': null }, m: 'line\nbreak' };
    const digest = digestOf({ action: 'deploy', resource: 'deployments.apps', namespace: 'ns', name: 'n', spec });
    expect(digest).toBe(
      sha(
        '{"action":"deploy","name":"n","namespace":"ns","resource":"deployments.apps","spec":{"a":{"B":true,"é":"ü","€":null},"m":"line\\nbreak","z":[1e+21,0.5,0,100]}}',
      ),
    );
  });

  it('removes spec.replicas and nothing else', () => {
    const object = deployment({ replicas: 7 });
    const spec = deploySpec(object) as Record<string, unknown>;
    expect(spec).not.toHaveProperty('replicas');
    expect(spec).toHaveProperty('template');
    expect((object.spec as Record<string, unknown>).replicas).toBe(7);
  });

  it('digests an object without spec with "spec": null', () => {
    expect(deploySpec({ kind: 'X' })).toBeNull();
    expect(digestOf({ action: 'deploy', resource: 'r', namespace: '', name: 'n', spec: null })).toBe(
      sha('{"action":"deploy","name":"n","namespace":"","resource":"r","spec":null}'),
    );
  });

  it('sees an UPDATE as a deploy only when the deploy digest changes', async () => {
    const target = { resource: 'deployments.apps', namespace: 'payments', name: 'api' };
    expect(await changedDeployDigest(target, deployment({ replicas: 9 }), deployment())).toBeUndefined();
    const reordered = deployment();
    const spec = reordered.spec as Record<string, unknown>;
    reordered.spec = Object.fromEntries(Object.entries(spec).reverse());
    expect(await changedDeployDigest(target, reordered, deployment())).toBeUndefined();
    const negativeZero = deployment();
    (negativeZero.spec as Record<string, unknown>).minReadySeconds = -0;
    const zero = deployment();
    (zero.spec as Record<string, unknown>).minReadySeconds = 0;
    expect(await changedDeployDigest(target, negativeZero, zero)).toBeUndefined();
    const changed = deployment({ image: 'other:2' });
    expect(await changedDeployDigest(target, changed, deployment())).toBe(
      digestOf({ ...target, action: 'deploy', spec: deploySpec(changed) }),
    );
  });

  it('computes large digests on a worker thread, to the same value', async () => {
    const target = { resource: 'deployments.apps', namespace: 'payments', name: 'api' };
    const big = deployment({ annotations: {} });
    (big.spec as Record<string, unknown>).blob = 'é'.repeat(LARGE_SUBJECT_CHARS);
    const worker = new DigestWorker();
    let calls = 0;
    const counting = (text: string) => {
      calls += 1;
      return worker.digest(text);
    };
    try {
      const offThread = await deployDigest(target, deploySpec(big), counting);
      expect(offThread).toBe(digestOf({ ...target, action: 'deploy', spec: deploySpec(big) }));
      expect(calls).toBe(1);
      const small = deployment();
      expect(await deployDigest(target, deploySpec(small), counting)).toBe(
        digestOf({ ...target, action: 'deploy', spec: deploySpec(small) }),
      );
      expect(calls).toBe(1);
      // Large UPDATEs: the same spec is recognised by its text, a changed one is digested off the loop.
      expect(await changedDeployDigest(target, big, structuredClone(big), counting)).toBeUndefined();
      const changed = structuredClone(big);
      (changed.spec as Record<string, unknown>).minReadySeconds = 5;
      expect(await changedDeployDigest(target, changed, big, counting)).toBe(
        digestOf({ ...target, action: 'deploy', spec: deploySpec(changed) }),
      );
    } finally {
      await worker.close();
    }
  });

  it('finishes pending jobs on this thread when the worker dies, and reports subjects it cannot digest', async () => {
    const worker = new DigestWorker();
    const subject = { action: 'deploy', resource: 'r', namespace: 'n', name: 'x', spec: { a: 1 } };
    // Many jobs, then the thread dies under them: every one still gets its digest.
    const pending = Array.from({ length: 200 }, () => worker.digest(JSON.stringify(subject)));
    await worker.close();
    const expected = digestOf({ action: 'deploy', resource: 'r', namespace: 'n', name: 'x', spec: { a: 1 } });
    expect(await Promise.all(pending)).toEqual(Array(200).fill(expected));
    // A lone surrogate cannot be canonicalised: the job is rejected, nothing throws elsewhere.
    const broken = JSON.stringify({ ...subject, spec: { a: '\ud800' } });
    await expect(worker.digest(broken)).rejects.toThrow(/surrogate/i);
    await worker.close();
  });

  it('starts its thread on first use and stops it once idle; a job after that starts a new one', async () => {
    const worker = new DigestWorker({ idleMs: 50 });
    const text = JSON.stringify({ action: 'deploy', resource: 'r', namespace: 'n', name: 'x', spec: { a: 1 } });
    const expected = digestOf({ action: 'deploy', resource: 'r', namespace: 'n', name: 'x', spec: { a: 1 } });
    try {
      expect(worker.running).toBe(false);
      expect(await worker.digest(text)).toBe(expected);
      expect(worker.running).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(worker.running).toBe(false);
      // A job racing the stop is answered either way.
      const [first, second] = await Promise.all([worker.digest(text), worker.digest(text)]);
      expect([first, second]).toEqual([expected, expected]);
    } finally {
      await worker.close();
    }
  });
});
