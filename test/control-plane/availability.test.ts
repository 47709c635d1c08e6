/**
 * The guard never becomes the outage: with twokey stopped, the real API server refuses gated
 * requests with its own "failed calling webhook" message (failurePolicy Fail) while everything
 * outside the critical scope keeps working; with twokey started again, everything is back without
 * restarting anything else.
 */
import { describe, expect, it } from 'vitest';
import { deployment, kubectl, kubectlOk, namespace, plane, unique, writeManifest } from './support.ts';
import { startTwokeyServer, stopTwokeyServer } from './twokey.ts';

describe('twokey stopped', () => {
  it('refuses only gated requests, with the API server message, until it is started again', async () => {
    const critical = await namespace('down');
    const gatedFile = await writeManifest('gated', deployment({ namespace: critical }));
    const other = await namespace('other', { critical: false });
    await stopTwokeyServer(plane.stateDir);
    try {
      const gated = await kubectl(['apply', '--dry-run=server', '-f', gatedFile]);
      expect(gated.code).toBe(1);
      expect(gated.stderr).toMatch(
        new RegExp(
          `^Error from server \\(InternalError\\): error when creating "${gatedFile}": Internal error occurred: failed calling webhook "workloads.twokey.dev": failed to call webhook: Post "https://127.0.0.1:\\d+/validate/critical\\?timeout=10s": dial tcp 127.0.0.1:\\d+: connect: connection refused\\n$`,
        ),
      );
      // Outside the critical scope nothing waits on twokey: other namespaces, kube-system, twokey's
      // own namespace, cluster-scoped objects.
      await kubectlOk(['apply', '-f', await writeManifest('other', deployment({ namespace: other }))]);
      await kubectlOk(['-n', other, 'set', 'image', 'deployment/api', 'api=registry.example/api:2.0']);
      await kubectlOk([
        'apply',
        '-f',
        await writeManifest(
          'kube-system',
          deployment({ name: unique('sys'), namespace: 'kube-system', labels: { 'twokey.dev/critical': 'true' } }),
        ),
      ]);
      await kubectlOk(['-n', 'twokey', 'create', 'configmap', unique('note')]);
      await kubectlOk(['create', 'clusterrole', unique('reader'), '--verb=get', '--resource=pods']);
      await kubectlOk(['delete', 'namespace', other, '--wait=false']);
    } finally {
      await startTwokeyServer(plane.stateDir, { pid: plane.ownerPid });
    }
    const back = await kubectl(['apply', '--dry-run=server', '-f', gatedFile]);
    expect(back.code).toBe(1);
    expect(back.stderr).toMatch(
      /admission webhook "workloads.twokey.dev" denied the request: twokey: deploy of deployments\.apps .* refused: 0 of 2/,
    );
  });
});
