/**
 * `twokey serve` as a process: starts, answers, reloads its certificate, drains on SIGTERM. What
 * is refused before anything starts, and the probe a client runs, are run in this process.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueServingCertificate } from '../../src/dev/certificates.ts';
import { callWebhook } from '../../src/kubernetes/webhook-client.ts';
import { runCli, serveCli as serve, twokey } from '../support/cli.ts';
import { endpointOf, eventually, SERVICE_NAME, type ServerFiles, serverFiles } from '../support/files.ts';
import { admissionReview, deployment, makeIssuer } from '../support/world.ts';

function peerSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', ca, servername: SERVICE_NAME, agent: false }, (res) => {
      resolve((res.socket as TLSSocket).getPeerCertificate().serialNumber);
      res.resume();
    });
    req.on('error', reject);
    req.end();
  });
}

let files: ServerFiles;
beforeAll(async () => {
  files = await serverFiles(await makeIssuer());
});
afterAll(async () => {
  await files.cleanup();
});

describe('twokey serve', () => {
  it('serves, reloads a rotated certificate, and drains on SIGTERM', async () => {
    const served = await serve([
      '--config',
      files.policy,
      '--tls-cert',
      files.cert,
      '--tls-key',
      files.key,
      '--poll-interval',
      '1s',
      '--shutdown-delay',
      '1s',
    ]);
    try {
      const endpoint = endpointOf(served, files);
      expect((await callWebhook(endpoint, admissionReview({ operation: 'CREATE', object: deployment() }))).kind).toBe('denied');

      await writeFile(join(files.dir, 'ca.crt'), files.ca.certPem);
      const probe = await twokey([
        'probe',
        '--url',
        `https://127.0.0.1:${served.port}`,
        '--server-name',
        SERVICE_NAME,
        '--ca-file',
        join(files.dir, 'ca.crt'),
      ]);
      expect(probe.code, probe.stdout).toBe(0);
      expect(probe.stdout).toBe(
        'ok   POST /validate admits a Deployment that is not critical\nok   POST /validate/critical refuses a critical Deployment without approvals\n',
      );
      const wrongName = await twokey([
        'probe',
        '--url',
        `https://127.0.0.1:${served.port}`,
        '--server-name',
        'other.twokey.svc',
        '--ca-file',
        join(files.dir, 'ca.crt'),
      ]);
      expect(wrongName.code).toBe(1);
      expect(wrongName.stdout).toMatch(/^FAIL POST \/validate admits a Deployment that is not critical: got failed calling webhook/);

      const before = await peerSerial(served.port, files.ca.certPem);
      const next = await issueServingCertificate(files.ca, { dns: [SERVICE_NAME] }, 2);
      await writeFile(files.key, next.keyPem);
      await writeFile(files.cert, next.certPem);
      await eventually(async () => (await peerSerial(served.port, files.ca.certPem)) !== before, 8000);
      expect(served.logs.some((l) => l.msg === 'TLS certificate reloaded')).toBe(true);

      served.child.kill('SIGTERM');
      // While draining, the server still answers and reports unready.
      await eventually(() => served.logs.some((l) => String(l.msg).startsWith('shutting down')), 3000);
      expect((await callWebhook(endpoint, admissionReview({ operation: 'CREATE', object: deployment() }))).kind).toBe('denied');
      expect(await served.exited).toBe(0);
      expect(served.logs.at(-1)?.msg).toBe('stopped');
    } finally {
      served.child.kill('SIGKILL');
    }
  });

  it('logs a background failure nobody awaited and keeps serving', async () => {
    // Plays a background task whose promise nobody awaits, failing on a signal once the server is up.
    const stray = join(files.dir, 'stray-rejection.mjs');
    await writeFile(stray, "process.on('SIGUSR2', () => { Promise.reject(new Error('stray background failure')); });\n");
    const served = await serve(['--config', files.policy, '--tls-cert', files.cert, '--tls-key', files.key], undefined, {
      NODE_OPTIONS: `--import=${stray}`,
    });
    try {
      served.child.kill('SIGUSR2');
      await eventually(() => served.logs.some((l) => l.msg === 'a background task failed unexpectedly; serving on'));
      expect(served.logs.find((l) => l.msg === 'a background task failed unexpectedly; serving on')?.error).toContain(
        'stray background failure',
      );
      const endpoint = endpointOf(served, files);
      expect((await callWebhook(endpoint, admissionReview({ operation: 'CREATE', object: deployment() }))).kind).toBe('denied');
    } finally {
      served.child.kill('SIGKILL');
    }
  });

  it('exits 2 with the reason when the policy is invalid', async () => {
    await writeFile(join(files.dir, 'broken.yaml'), 'cluster: x\n');
    const result = await runCli(['serve', '--config', join(files.dir, 'broken.yaml'), '--port', '0', '--host', '127.0.0.1']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('issuers');
  });

  it('takes --context as a request for that cluster, and exits 2 when the kubeconfig lacks it', async () => {
    const kubeconfig = join(files.dir, 'kubeconfig-without-the-context');
    await writeFile(
      kubeconfig,
      'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\ncontexts: [{name: other, context: {cluster: c}}]\ncurrent-context: other\nusers: []\n',
    );
    const result = await runCli(['serve', '--config', files.policy, '--port', '0', '--host', '127.0.0.1', '--context', 'prod'], {
      env: { ...process.env, KUBECONFIG: kubeconfig },
    });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('context "prod" is not in the kubeconfig');
  });

  it.each([
    [['--max-connections-per-peer', '2000'], '--max-connections-per-peer cannot exceed --max-connections'],
    [['--body-limit-mib', '40'], '--body-limit-mib cannot exceed --body-memory-per-peer-mib'],
  ])('exits 2 when the client limits contradict each other (%s), naming the options', async (limits, message) => {
    const result = await twokey(['serve', '--config', files.policy, ...limits]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  it('names the client limits and their defaults in --help', async () => {
    const { stdout } = await twokey(['serve', '--help']);
    for (const [option, value] of [
      ['--body-limit-mib <n>', 7],
      ['--max-connections <n>', 1024],
      ['--max-connections-per-peer <n>', 256],
      ['--body-memory-mib <n>', 64],
      ['--body-memory-per-peer-mib <n>', 32],
    ])
      expect(stdout.replace(/\s+/g, ' ')).toMatch(new RegExp(`${option} .*?\\(default: ${value}\\)`));
  });

  it('exits 2 when only one of --tls-cert and --tls-key is given', async () => {
    const result = await twokey(['serve', '--config', files.policy, '--tls-cert', files.cert]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--tls-cert and --tls-key go together');
  });

  it('--dev makes a development setup on first run and reuses it after', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'twokey-dev-'));
    try {
      for (const expected of ['created', 'reusing']) {
        const served = await serve(['--dev'], cwd);
        let stderr = '';
        served.child.stderr?.on('data', (c) => {
          stderr += c;
        });
        await eventually(() => stderr.includes('npx twokey demo'));
        expect(stderr).toContain(`twokey development server (${expected} .twokey-dev/)`);
        served.child.kill('SIGTERM');
        expect(await served.exited).toBe(0);
      }
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
