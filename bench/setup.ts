/**
 * What both servers are started from: a change system's key, a policy trusting it, and a serving
 * certificate with its CA, written to a temporary folder.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWK } from 'jose';
import { createCertificateAuthority, issueServingCertificate } from '../src/dev/certificates.ts';
import { generateIssuerKey } from '../src/keys/signing.ts';
import { CLUSTER, ISSUER } from './reviews.ts';

/** The folder (in the setup's) of the countersigned case's policy. */
export const COUNTERSIGN_DIR = 'countersign';
export const BENCH_APPROVERS = ['bob@example.com', 'carol@example.com'] as const;

/** The name the serving certificate carries, as a service's would. */
export const SERVER_NAME = 'twokey.bench.svc';

export interface BenchSetup {
  /** The folder holding tls.crt, tls.key, jwks.json and policy.yaml. */
  readonly dir: string;
  /** The change system's private key, which signs the approvals. */
  readonly key: JWK;
  /** The approvers' private keys, which countersign them, by approver. */
  readonly approverKeys: Readonly<Record<string, JWK>>;
  /** The CA clients trust. */
  readonly caPem: string;
  remove(): void;
}

export async function benchSetup(): Promise<BenchSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'twokey-bench-'));
  const issuer = await generateIssuerKey('EdDSA', 'bench-1');
  const ca = await createCertificateAuthority('twokey bench CA', 1);
  const serving = await issueServingCertificate(ca, { dns: [SERVER_NAME], ips: ['127.0.0.1'] }, 1);
  writeFileSync(join(dir, 'tls.crt'), serving.certPem);
  writeFileSync(join(dir, 'tls.key'), serving.keyPem);
  writeFileSync(join(dir, 'jwks.json'), JSON.stringify(issuer.jwks));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `cluster: ${CLUSTER}\nissuers:\n  - issuer: ${ISSUER}\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\n`,
  );
  // The countersigned case's servers: the same files, a policy that counts countersigned approvals only.
  const countersign = join(dir, COUNTERSIGN_DIR);
  mkdirSync(countersign);
  for (const file of ['tls.crt', 'tls.key']) writeFileSync(join(countersign, file), file === 'tls.crt' ? serving.certPem : serving.keyPem);
  writeFileSync(join(countersign, 'jwks.json'), JSON.stringify(issuer.jwks));
  const approverKeys: Record<string, JWK> = {};
  const registry: string[] = [];
  for (const approver of BENCH_APPROVERS) {
    const pair = await generateIssuerKey('EdDSA', `${approver}-1`);
    approverKeys[approver] = pair.privateJwk;
    registry.push(`  - identity: ${approver}\n    jwks: ${JSON.stringify(pair.jwks)}\n`);
  }
  writeFileSync(
    join(countersign, 'policy.yaml'),
    `cluster: ${CLUSTER}\nissuers:\n  - issuer: ${ISSUER}\n    jwksFile: jwks.json\ncritical:\n  namespaces: [payments]\napprovals:\n  countersign: true\napprovers:\n${registry.join('')}`,
  );
  return {
    dir,
    key: issuer.privateJwk as JWK,
    approverKeys,
    caPem: ca.certPem,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
