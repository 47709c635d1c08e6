/**
 * A server's files in a temporary folder: policy, issuer JWKS, serving certificate and its CA.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CertificateAuthority, createCertificateAuthority, issueServingCertificate } from '../../src/dev/certificates.ts';
import type { WebhookEndpoint } from '../../src/kubernetes/webhook-client.ts';
import { createLogger } from '../../src/server/logger.ts';
import { type RunningServer, type ServeOptions, startServer } from '../../src/server/serve.ts';
import type { Issuer } from './world.ts';

export const SERVICE_NAME = 'twokey.twokey.svc';

export interface ServerFiles {
  readonly dir: string;
  readonly policy: string;
  readonly jwks: string;
  readonly cert: string;
  readonly key: string;
  readonly ca: CertificateAuthority;
  writePolicy(yaml: string): Promise<void>;
  cleanup(): Promise<void>;
}

export function policyYaml(issuer: string, extra = ''): string {
  return `cluster: prod-eu-1\nissuers:\n  - issuer: ${issuer}\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\n${extra}`;
}

let sharedCa: Promise<CertificateAuthority> | undefined;

export async function serverFiles(issuer: Issuer): Promise<ServerFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'twokey-test-'));
  sharedCa ??= createCertificateAuthority('twokey test CA', 2);
  const ca = await sharedCa;
  const serving = await issueServingCertificate(ca, { dns: [SERVICE_NAME, 'localhost'], ips: ['127.0.0.1'] }, 2);
  const files = {
    dir,
    policy: join(dir, 'policy.yaml'),
    jwks: join(dir, 'jwks.json'),
    cert: join(dir, 'tls.crt'),
    key: join(dir, 'tls.key'),
    ca,
    async writePolicy(yaml: string) {
      await writeFile(join(dir, 'policy.yaml'), yaml);
    },
    async cleanup() {
      await rm(dir, { recursive: true, force: true });
    },
  };
  await writeFile(files.jwks, JSON.stringify(issuer.jwks));
  await writeFile(files.cert, serving.certPem);
  await writeFile(files.key, serving.keyPem);
  await files.writePolicy(policyYaml(issuer.issuer));
  return files;
}

/** Polls until `check` holds, for reload tests. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Starts the server as `twokey serve` would, on loopback, from these files. */
export function serveFiles(files: ServerFiles, extra: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer({
    policyPath: files.policy,
    tls: { certPath: files.cert, keyPath: files.key },
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
    ...extra,
  });
}

/** How kube-apiserver would reach that server: by the service name its certificate carries. */
export function endpointOf(
  server: { readonly port: number },
  files: ServerFiles,
  path = '/validate',
  webhookName = 'workloads.twokey.dev',
): WebhookEndpoint {
  return { url: `https://127.0.0.1:${server.port}${path}`, serverName: SERVICE_NAME, caBundle: files.ca.certPem, webhookName };
}
