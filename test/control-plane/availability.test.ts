/**
 * The guard never becomes the outage: with twokey stopped, the real API server refuses gated
 * requests with its own "failed calling webhook" message (failurePolicy Fail) while everything
 * outside the critical scope keeps working; with twokey started again, everything is back without
 * restarting anything else. Crowded by clients that hold connections, it still answers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Clients } from '../support/clients.ts';
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

describe('twokey crowded by idle clients', () => {
  it('still answers kube-apiserver while 1,100 connections that never start TLS are held open', async () => {
    const critical = await namespace('crowded');
    const file = await writeManifest('crowded', deployment({ namespace: critical }));
    const port = Number(new URL(plane.twokey.url).port);
    const clients = new Clients(port, readFileSync(join(plane.twokey.dir, 'ca.crt'), 'utf8'));
    // Started afresh, so that kube-apiserver has no kept-alive connection to it and must open one.
    await stopTwokeyServer(plane.stateDir);
    await startTwokeyServer(plane.stateDir, { pid: plane.ownerPid });
    try {
      // Eleven pods' worth, from eleven addresses: more than the server's connection limit.
      for (let i = 2; i <= 12; i += 1) await clients.idle(`127.0.0.${i}`, 100);
      for (let i = 0; i < 3; i += 1) {
        const started = Date.now();
        const result = await kubectl(['apply', '--dry-run=server', '-f', file]);
        expect(result.stderr).toMatch(/admission webhook "workloads\.twokey\.dev" denied the request: twokey: deploy of /);
        expect(Date.now() - started).toBeLessThan(5000);
      }
    } finally {
      clients.destroyAll();
    }
  });
});
