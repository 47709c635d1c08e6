/**
 * `twokey attach`: rendered manifests in, the same manifests out with each gated object's
 * approvals (and, for a plan, the proof of its entries) annotated; all or nothing. It reads stdin
 * by default, so that it sits in a pipe (`helm template ... | twokey attach --approvals dir/ |
 * kubectl apply -f -`) or behind Helm's post-renderer.
 */
import type { Command } from 'commander';
import { attachApprovals } from '../manifests/attach.ts';
import type { Terminal } from './common.ts';
import { readApprovalFiles, readManifestInputs, readPlanFile } from './inputs.ts';

interface AttachFlags {
  approvals: string[];
  plan?: string;
  file: string;
  namespace?: string;
}

const collect = (value: string, previous: string[] = []) => [...previous, value];

export function registerAttach(program: Command, { io }: Terminal): void {
  program
    .command('attach')
    .description(
      'write the manifests with their approvals attached as annotations, every other byte as it was; nothing when anything disagrees',
    )
    .requiredOption('--approvals <path>', 'an approval token file, or a folder of them (one token per file); repeatable', collect)
    .option('--plan <file>', 'the plan (twokey plan -o json) that plan approvals approve: each object gets the proof of its entries')
    .option('-f, --file <file>', 'the rendered manifests, or - for stdin', '-')
    .option('-n, --namespace <ns>', 'namespace of namespaced objects that name none, as kubectl apply -n')
    .action(async (flags: AttachFlags) => {
      const [input] = await readManifestInputs([flags.file], io.stdin);
      const approvals = await readApprovalFiles(flags.approvals);
      const text = attachApprovals({
        text: input?.text ?? '',
        source: input?.source ?? flags.file,
        approvals,
        ...(flags.plan !== undefined ? { plan: await readPlanFile(flags.plan) } : {}),
        ...(flags.namespace !== undefined ? { namespace: flags.namespace } : {}),
      });
      io.stdout.write(text);
    });
}
