/**
 * `twokey approve`: mints one approval for the object in a manifest, as a change system would.
 */
import { type Command, Option } from 'commander';
import type { Binding } from '../change/claims.ts';
import { ACTIONS, type Action } from '../change/digest.ts';
import { TwokeyError } from '../errors.ts';
import { normalizeIdentity } from '../identity.ts';
import { mintApproval } from '../keys/signing.ts';
import { digestOption, durationOption, type Terminal, usageError } from './common.ts';
import { actionFor, objectDigest, targetOf } from './digest.ts';
import { readManifests } from './manifests.ts';
import { type SignerFlags, signerFrom, withSignerOptions } from './signer.ts';

interface ApproveFlags extends SignerFlags {
  issuer: string;
  audience: string;
  approver: string;
  change: string;
  file: string;
  action?: Action;
  digest?: string;
  ttl: number;
  requester?: string;
  namespace: string;
}

export function registerApprove(program: Command, { out, err, io }: Terminal): void {
  withSignerOptions(
    program
      .command('approve')
      .description('print one approval (compact JWS) for the object in FILE, to attach as an approval.twokey.dev/<name> annotation'),
    "the change system's private JWK (from twokey keygen); or --signer",
  )
    .requiredOption('--issuer <iss>', 'issuer name, as trusted in the policy')
    .requiredOption('--audience <cluster>', "the cluster's name (the policy's cluster)")
    .requiredOption('--approver <id>', 'who approves (the token subject)')
    .requiredOption('--change <id>', 'the change ticket id, e.g. CHG0031337')
    .requiredOption('-f, --file <file>', 'manifest holding the one object approved, or - for stdin')
    .addOption(new Option('--action <action>', 'what is approved (default: deploy; delete for Namespaces)').choices(ACTIONS))
    .option(
      '--digest <digest>',
      "the digest to approve, taken from the webhook's refusal (it includes the server's defaults)",
      digestOption,
    )
    .option('--ttl <duration>', 'how long the approval is valid', durationOption, 3600)
    .option('--requester <id>', 'who raised the change (may not approve it)')
    .option('-n, --namespace <ns>', 'namespace for objects that do not name one', 'default')
    .action(async (flags: ApproveFlags) => {
      if (normalizeIdentity(flags.approver) === undefined)
        throw usageError(`--approver ${JSON.stringify(flags.approver)} is not a valid identity`);
      if (flags.requester !== undefined && normalizeIdentity(flags.requester) === undefined) {
        throw usageError(`--requester ${JSON.stringify(flags.requester)} is not a valid identity`);
      }
      if (flags.change.trim() === '') throw usageError('--change must not be empty');
      if (flags.ttl <= 0) throw usageError('--ttl must be longer than 0s');
      if (flags.ttl > 24 * 3600)
        err(`note: the approval lives ${flags.ttl}s; a policy with the default approvals.maxTtl (24h) will not count it`);
      const objects = await readManifests(flags.file, flags.namespace, { stdin: io.stdin });
      if (objects.length !== 1) {
        throw new TwokeyError(
          'ERR_MANIFEST_INVALID',
          `${flags.file} must hold exactly one gated object to approve; it holds ${objects.length}`,
        );
      }
      const m = objects[0] as (typeof objects)[number];
      const action = actionFor(m, flags.action);
      const digest = flags.digest ?? objectDigest(m, action);
      const binding: Binding = { action, ...targetOf(m), digest };
      const token = await mintApproval({
        signer: await signerFrom(flags),
        issuer: flags.issuer,
        audience: flags.audience,
        approver: flags.approver,
        change: flags.change,
        binding,
        ttlSeconds: flags.ttl,
        ...(flags.requester !== undefined ? { requester: flags.requester } : {}),
      });
      out(token);
    });
}
