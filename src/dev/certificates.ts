/**
 * Certificates for trying twokey without a cluster: a throwaway CA and a serving certificate for
 * the names a client will check. Production installs get theirs from the chart or cert-manager.
 * The X.509 library is loaded only when this is used, never on the serving path.
 */
import { webcrypto } from 'node:crypto';

export interface CertificateAuthority {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface ServingCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  readonly caPem: string;
}

const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;

async function x509() {
  await import('reflect-metadata');
  const lib = await import('@peculiar/x509');
  lib.cryptoProvider.set(webcrypto as never);
  return lib;
}

function pemKey(der: ArrayBuffer): string {
  const body = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .trim();
  return `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`;
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

export async function createCertificateAuthority(commonName = 'twokey development CA', days = 3650): Promise<CertificateAuthority> {
  const lib = await x509();
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}`,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: EC,
    keys,
    extensions: [
      new lib.BasicConstraintsExtension(true, 0, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.keyCertSign | lib.KeyUsageFlags.cRLSign, true),
      await lib.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    keyPem: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
  };
}

/** A serving certificate signed by `ca` for DNS names and IP addresses. */
export async function issueServingCertificate(
  ca: CertificateAuthority,
  names: { dns: readonly string[]; ips?: readonly string[] },
  days = 365,
): Promise<ServingCertificate> {
  const lib = await x509();
  const caCert = new lib.X509Certificate(ca.certPem);
  const caDer = Buffer.from(ca.keyPem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  const caKey = await webcrypto.subtle.importKey('pkcs8', caDer, EC, false, ['sign']);
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await lib.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names.dns[0] ?? 'localhost'}`,
    issuer: caCert.subject,
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + days * DAY_MS),
    signingAlgorithm: EC,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new lib.BasicConstraintsExtension(false, undefined, true),
      new lib.KeyUsagesExtension(lib.KeyUsageFlags.digitalSignature | lib.KeyUsageFlags.keyEncipherment, true),
      new lib.ExtendedKeyUsageExtension([lib.ExtendedKeyUsage.serverAuth], false),
      new lib.SubjectAlternativeNameExtension([
        ...names.dns.map((value) => ({ type: 'dns' as const, value })),
        ...(names.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
      ]),
      await lib.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    keyPem: pemKey(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    caPem: ca.certPem,
  };
}

/**
 * A throwaway CA and a serving certificate for localhost, made afresh each time: what `twokey
 * serve` serves when it is given no certificate, for trying it out.
 */
export async function throwawayServingCertificate(): Promise<ServingCertificate> {
  const ca = await createCertificateAuthority('twokey ephemeral CA', 30);
  return issueServingCertificate(ca, { dns: ['localhost'], ips: ['127.0.0.1', '::1'] }, 30);
}
