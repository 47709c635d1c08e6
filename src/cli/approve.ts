/**
 * `twokey approve`: mints one approval, as a change system would: of the object in a manifest, or
 * with --plan of every entry of a plan (one token per approver for the whole change); or with
 * --break-glass, one break-glass token for the objects in a manifest, as on-call does in an
 * incident with the break-glass key.
 */
import { type Command, Option } from 'commander';
import { type Binding, BREAK_GLASS_MAX_ENTRIES } from '../change/claims.ts';
import { ACTIONS, type Action, describeChangeTarget } from '../change/digest.ts';
import { TwokeyError } from '../errors.ts';
import { normalizeIdentity } from '../identity.ts';
import { mintApproval, mintBreakGlass, mintPlanApproval } from '../keys/signing.ts';
import { digestOption, durationOption, type Terminal, usageError } from './common.ts';
import { actionFor, objectDigest, targetOf } from './digest.ts';
import { readPlanFile } from './inputs.ts';
import { readManifests } from './manifests.ts';
import { type SignerFlags, signerFrom, withSignerOptions } from './signer.ts';

/** How many of a plan's entries `approve --plan` lists on stderr before it counts the rest. */
const SIGNED_ENTRIES_LISTED = 100;

interface ApproveFlags extends SignerFlags {
  key?: string;
  issuer: string;
  audience: string;
  approver: string;
  change?: string;
  breakGlass?: boolean;
  incident?: string;
  file?: string;
  plan?: string;
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
      .description(
        'print one approval (compact JWS) for the object in FILE, or with --plan for every object of a plan, to attach as an approval.twokey.dev/<name> annotation (twokey attach)',
      ),
    "the change system's private JWK (from twokey keygen); with --break-glass, the break-glass key; or --signer",
  )
    .option('--key <jwk>', 'the same as --private-key')
    .requiredOption('--issuer <iss>', 'issuer name, as trusted in the policy')
    .requiredOption('--audience <cluster>', "the cluster's name (the policy's cluster)")
    .requiredOption('--approver <id>', 'who approves (the token subject)')
    .option('--change <id>', 'the change ticket id, e.g. CHG0031337 (required but with --break-glass)')
    .option(
      '--break-glass',
      "mint a break-glass token with the break-glass issuer's key: one approver lets through the objects in FILE, loudly",
    )
    .option('--incident <id>', 'with --break-glass: the incident id, e.g. INC-123')
    .option('-f, --file <file>', 'manifest holding the one object approved (with --break-glass, each object let through), or - for stdin')
    .option(
      '--plan <file>',
      'approve every entry of this plan (twokey plan -o json) with one token, instead of one object; with --break-glass, let its entries through',
    )
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
      if (flags.privateKey !== undefined && flags.key !== undefined) throw usageError('give the key once: --private-key or --key');
      const keyFile = flags.privateKey ?? flags.key;
      if (flags.ttl <= 0) throw usageError('--ttl must be longer than 0s');
      if (flags.plan !== undefined && (flags.file !== undefined || flags.action !== undefined || flags.digest !== undefined)) {
        throw usageError('--plan approves the whole plan: give no -f, --action or --digest with it');
      }
      if (flags.plan === undefined && flags.file === undefined) throw usageError('give -f FILE (one object) or --plan FILE (a plan)');
      if (flags.breakGlass) {
        if (flags.change !== undefined) throw usageError('--change is for approvals; a break-glass token names --incident');
        if (flags.incident === undefined || flags.incident.trim() === '')
          throw usageError('--break-glass needs --incident with the incident id');
        if (flags.ttl > 3600)
          err(`note: the token lives ${flags.ttl}s; a policy with the default breakGlass.maxTtl (1h) will not count it`);
      } else {
        if (flags.incident !== undefined) throw usageError('--incident is only for --break-glass');
        if (flags.change === undefined) throw usageError('--change is required');
        if (flags.change.trim() === '') throw usageError('--change must not be empty');
        if (flags.ttl > 24 * 3600)
          err(`note: the approval lives ${flags.ttl}s; a policy with the default approvals.maxTtl (24h) will not count it`);
      }
      // What any token says of who signs it (a key file or an external signer: one signing path
      // for approvals, plan approvals and break-glass tokens), for which cluster, for whom, and
      // for how long.
      const signing = {
        signer: await signerFrom({ ...flags, privateKey: keyFile }),
        issuer: flags.issuer,
        audience: flags.audience,
        approver: flags.approver,
        ttlSeconds: flags.ttl,
        ...(flags.requester !== undefined ? { requester: flags.requester } : {}),
      };
      const fileDigests = 'its digests are of the files as written and may lack server defaults';
      if (flags.plan !== undefined) {
        const plan = await readPlanFile(flags.plan);
        // Say what the token approves: the entries, which are what the webhook checks.
        const listed = plan.entries.slice(0, SIGNED_ENTRIES_LISTED);
        err(`approving plan ${plan.digest}, ${plan.entries.length} ${plan.entries.length === 1 ? 'entry' : 'entries'}:`);
        for (const e of listed) err(`  ${e.action} ${describeChangeTarget(e)} ${e.digest}`);
        if (plan.entries.length > listed.length) err(`  ... and ${plan.entries.length - listed.length} more (the plan's entries)`);
        if (flags.breakGlass) {
          // The plan's entries are the exact changes, digests from the cluster's dry run included.
          if (plan.entries.length > BREAK_GLASS_MAX_ENTRIES) {
            throw usageError(`a break-glass token names at most ${BREAK_GLASS_MAX_ENTRIES} changes; the plan holds ${plan.entries.length}`);
          }
          const changes = plan.entries.map(
            ({ action, resource, namespace, name, digest }): Binding => ({ action, resource, namespace, name, digest }),
          );
          out(await mintBreakGlass({ ...signing, incident: flags.incident as string, changes }));
          if (plan.source === 'files') err(`note: this plan was made without --server; ${fileDigests}`);
          return;
        }
        out(await mintPlanApproval({ ...signing, change: flags.change as string, plan: plan.digest, entries: plan.entries.length }));
        if (plan.source === 'files') {
          err(`note: this plan was made without --server; ${fileDigests}`);
        }
        return;
      }
      const file = flags.file as string;
      const objects = await readManifests(file, flags.namespace, { stdin: io.stdin });
      if (flags.breakGlass) {
        if (objects.length === 0) throw new TwokeyError('ERR_MANIFEST_INVALID', `${file} holds no gated object to let through`);
        if (flags.digest !== undefined && objects.length !== 1)
          throw usageError('--digest names the digest of one object; FILE holds several');
        const changes = objects.map((m): Binding => {
          const action = actionFor(m, flags.action);
          return { action, ...targetOf(m), digest: flags.digest ?? objectDigest(m, action) };
        });
        out(await mintBreakGlass({ ...signing, incident: flags.incident as string, changes }));
        if (flags.digest === undefined) {
          err(`note: ${fileDigests}; take the digest from the refusal (--digest) or the objects from twokey plan --server (--plan)`);
        }
        return;
      }
      if (objects.length !== 1) {
        throw new TwokeyError('ERR_MANIFEST_INVALID', `${file} must hold exactly one gated object to approve; it holds ${objects.length}`);
      }
      const m = objects[0] as (typeof objects)[number];
      const action = actionFor(m, flags.action);
      const digest = flags.digest ?? objectDigest(m, action);
      const binding: Binding = { action, ...targetOf(m), digest };
      out(await mintApproval({ ...signing, change: flags.change as string, binding }));
    });
}
