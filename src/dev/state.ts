/**
 * A development setup for trying twokey on one machine: a policy, a TLS certificate and a
 * change-system key, made on first use in a state folder and reused after.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { generateIssuerKey } from '../keys/signing.ts';
import { createCertificateAuthority, issueServingCertificate } from './certificates.ts';

export const DEV_CLUSTER = 'dev-cluster';
export const DEV_ISSUER = 'https://change.twokey.dev.localhost';
export const DEV_STATE_DIR = '.twokey-dev';

export interface DevState {
  readonly dir: string;
  readonly created: boolean;
  readonly policy: string;
  readonly caCert: string;
  readonly tlsCert: string;
  readonly tlsKey: string;
  readonly issuerKey: string;
  readonly jwks: string;
}

export function devPolicyYaml(cluster: string, issuer: string, jwksFile: string): string {
  return [
    '# twokey development policy (made by `twokey serve --dev`; edit freely, it is reloaded on save)',
    `cluster: ${cluster}`,
    'issuers:',
    `  - issuer: ${issuer}`,
    `    jwksFile: ${jwksFile}`,
    'approvals:',
    '  required: 2',
    '  maxTtl: 24h',
    '  clockSkew: 60s',
    '  algorithms: [EdDSA, ES256]',
    'critical:',
    '  namespaces: [payments]',
    '',
  ].join('\n');
}

async function writePrivate(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
  await chmod(path, 0o600);
}

export async function ensureDevState(dirOption = DEV_STATE_DIR): Promise<DevState> {
  const dir = resolve(dirOption);
  const state: DevState = {
    dir,
    created: false,
    policy: join(dir, 'policy.yaml'),
    caCert: join(dir, 'ca.crt'),
    tlsCert: join(dir, 'tls.crt'),
    tlsKey: join(dir, 'tls.key'),
    issuerKey: join(dir, 'issuer.private.jwk.json'),
    jwks: join(dir, 'jwks.json'),
  };
  const files = [state.policy, state.caCert, state.tlsCert, state.tlsKey, state.issuerKey, state.jwks];
  if (files.every((file) => existsSync(file))) return state;

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const ca = await createCertificateAuthority('twokey development CA');
  const serving = await issueServingCertificate(ca, {
    dns: ['localhost', 'twokey.twokey.svc', 'twokey.twokey.svc.cluster.local'],
    ips: ['127.0.0.1', '::1'],
  });
  const issuer = await generateIssuerKey('EdDSA', 'dev-1');
  await writeFile(state.caCert, ca.certPem);
  await writeFile(state.tlsCert, serving.certPem);
  await writePrivate(state.tlsKey, serving.keyPem);
  await writePrivate(state.issuerKey, `${JSON.stringify(issuer.privateJwk, null, 2)}\n`);
  await writeFile(state.jwks, `${JSON.stringify(issuer.jwks, null, 2)}\n`);
  await writeFile(state.policy, devPolicyYaml(DEV_CLUSTER, DEV_ISSUER, 'jwks.json'));
  return { ...state, created: true };
}
