/**
 * `twokey approve`: mints one approval, as a change system would: of the object in a manifest, or
 * with --plan of every entry of a plan (one token per approver for the whole change).
 */
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { Binding } from '../change/claims.ts';
import { ACTIONS, type Action } from '../change/digest.ts';
import { TwokeyError } from '../errors.ts';
import { normalizeIdentity } from '../identity.ts';
import { mintApproval, mintPlanApproval, parsePrivateJwk } from '../keys/signing.ts';
import { digestOption, durationOption, type Terminal, usageError } from './common.ts';
import { actionFor, objectDigest, targetOf } from './digest.ts';
import { readPlanFile } from './inputs.ts';
import { readManifests } from './manifests.ts';

interface ApproveFlags {
  privateKey: string;
  issuer: string;
  audience: string;
  approver: string;
  change: string;
  file?: string;
  plan?: string;
  action?: Action;
  digest?: string;
  ttl: number;
  requester?: string;
  namespace: string;
}

export function registerApprove(program: Command, { out, err, io }: Terminal): void {
  program
    .command('approve')
    .description(
      'print one approval (compact JWS) for the object in FILE, or with --plan for every object of a plan, to attach as an approval.twokey.dev/<name> annotation (twokey attach)',
    )
    .requiredOption('--private-key <jwk>', "the change system's private JWK (from twokey keygen)")
    .requiredOption('--issuer <iss>', 'issuer name, as trusted in the policy')
    .requiredOption('--audience <cluster>', "the cluster's name (the policy's cluster)")
    .requiredOption('--approver <id>', 'who approves (the token subject)')
    .requiredOption('--change <id>', 'the change ticket id, e.g. CHG0031337')
    .option('-f, --file <file>', 'manifest holding the one object approved, or - for stdin')
    .option('--plan <file>', 'approve every entry of this plan (twokey plan -o json) with one token, instead of one object')
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
      if (flags.plan !== undefined && (flags.file !== undefined || flags.action !== undefined || flags.digest !== undefined)) {
        throw usageError('--plan approves the whole plan: give no -f, --action or --digest with it');
      }
      if (flags.plan === undefined && flags.file === undefined) throw usageError('give -f FILE (one object) or --plan FILE (a plan)');
      const plan = flags.plan !== undefined ? await readPlanFile(flags.plan) : undefined;
      let binding: Binding | undefined;
      if (flags.file !== undefined) {
        const objects = await readManifests(flags.file, flags.namespace, { stdin: io.stdin });
        if (objects.length !== 1) {
          throw new TwokeyError(
            'ERR_MANIFEST_INVALID',
            `${flags.file} must hold exactly one gated object to approve; it holds ${objects.length}`,
          );
        }
        const m = objects[0] as (typeof objects)[number];
        const action = actionFor(m, flags.action);
        binding = { action, ...targetOf(m), digest: flags.digest ?? objectDigest(m, action) };
      }
      let jwkDocument: unknown;
      try {
        jwkDocument = JSON.parse(await readFile(flags.privateKey, 'utf8'));
      } catch (error) {
        throw new TwokeyError('ERR_KEY_INVALID', `cannot read the private JWK ${flags.privateKey}: ${(error as Error).message}`);
      }
      const signing = {
        privateJwk: parsePrivateJwk(jwkDocument, flags.privateKey),
        issuer: flags.issuer,
        audience: flags.audience,
        approver: flags.approver,
        change: flags.change,
        ttlSeconds: flags.ttl,
        ...(flags.requester !== undefined ? { requester: flags.requester } : {}),
      };
      const token = plan
        ? await mintPlanApproval({ ...signing, plan: plan.digest, entries: plan.entries.length })
        : await mintApproval({ ...signing, binding: binding as Binding });
      if (plan?.source === 'files') {
        err('note: this plan was made from the files as written (twokey plan without --server); its digests may lack server defaults');
      }
      out(token);
    });
}
