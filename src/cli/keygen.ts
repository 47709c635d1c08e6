/**
 * `twokey keygen`: a key pair for a change system: the private JWK it signs with, and the public
 * JWKS the webhook trusts.
 */
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import { normalizeIdentity } from '../identity.ts';
import { generateIssuerKey, KEYGEN_ALGORITHMS, type KeygenAlgorithm } from '../keys/signing.ts';
import { type Terminal, usageError } from './common.ts';

interface KeygenFlags {
  issuer?: string;
  approver?: string;
  alg: KeygenAlgorithm;
  kid?: string;
  privateKey: string;
  jwks: string;
  force?: boolean;
}

export function registerKeygen(program: Command, { out, err }: Terminal): void {
  program
    .command('keygen')
    .description(
      "make a signing key, a change system's (--issuer) or an approver's (--approver): a private JWK and the public JWKS for the policy",
    )
    .option('--issuer <iss>', 'the issuer name approvals will carry as iss')
    .option('--approver <id>', "an approver's countersigning key: the identity approvals name them by (sub)")
    .addOption(new Option('--alg <alg>', 'signature algorithm').choices(KEYGEN_ALGORITHMS).default('EdDSA'))
    .option('--kid <kid>', 'key id (default: the RFC 7638 thumbprint)')
    .requiredOption('--private-key <file>', 'where to write the private JWK (mode 0600)')
    .requiredOption('--jwks <file>', 'where to write the public JWKS')
    .option('--force', 'overwrite existing files')
    .action(async (flags: KeygenFlags) => {
      if ((flags.issuer === undefined) === (flags.approver === undefined)) throw usageError('give exactly one of --issuer and --approver');
      if (flags.approver !== undefined && normalizeIdentity(flags.approver) === undefined) {
        throw usageError(`--approver ${JSON.stringify(flags.approver)} is not a valid identity`);
      }
      for (const file of [flags.privateKey, flags.jwks]) {
        if (!flags.force && existsSync(file)) throw usageError(`${file} exists; pass --force to overwrite it`);
      }
      if (flags.privateKey === flags.jwks) throw usageError('--private-key and --jwks must be different files');
      const pair = await generateIssuerKey(flags.alg, flags.kid);
      // An existing file is never written over (wx): with --force it is removed first, so the key is
      // only ever written into a file created private, whatever the mode of the one it replaces.
      const flag = flags.force ? 'w' : 'wx';
      if (flags.force) await rm(flags.privateKey, { force: true });
      await writeFile(flags.privateKey, `${JSON.stringify({ ...pair.privateJwk }, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      await writeFile(flags.jwks, `${JSON.stringify(pair.jwks, null, 2)}\n`, { flag });
      if (flags.approver !== undefined) {
        err(`wrote ${flags.privateKey} (private, keep it with ${flags.approver}, or in their signer) and ${flags.jwks} (public)`);
        err('register the approver in the policy:');
        out('approvers:');
        out(`  - identity: ${JSON.stringify(flags.approver)}`);
        out(`    jwksFile: ${flags.jwks}`);
        err(`countersignatures are signed with kid ${JSON.stringify(pair.privateJwk.kid)} and alg ${flags.alg} (twokey countersign)`);
        return;
      }
      err(`wrote ${flags.privateKey} (private, keep it in the change system) and ${flags.jwks} (public)`);
      err('add the issuer to the policy:');
      out('issuers:');
      out(`  - issuer: ${flags.issuer}`);
      out(`    jwksFile: ${flags.jwks}`);
      err(`approvals are signed with kid ${JSON.stringify(pair.privateJwk.kid)} and alg ${flags.alg}`);
    });
}
