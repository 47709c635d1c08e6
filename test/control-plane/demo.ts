/**
 * The two-person rule played on the local control plane with the real kubectl, each command printed
 * as typed and followed by what it printed: a deploy refused with the digest to approve, two
 * approvals attached and the deploy admitted, a spec change refused, the agent's deletion of the
 * namespace refused, then admitted with approvals, and the namespace emptied by the namespace
 * controller.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { binariesDir } from './binaries.ts';
import { approvalAnnotations, approveArgs, deployment, digestIn, type Result, runCommand, TWOKEY_BIN } from './commands.ts';
import { CLUSTER, ISSUER } from './twokey.ts';

const print = (line = '') => process.stdout.write(`${line}\n`);
/** Tokens are long: shown cut, as a person would read them. */
const shorten = (text: string) => text.replace(/eyJ[\w-]{20,}\.[\w-]+\.[\w-]+/g, (token) => `${token.slice(0, 24)}…`);

export async function playDemo(options: { stateDir: string }): Promise<void> {
  const kubeconfig = join(options.stateDir, 'kubeconfig');
  const kubectlBinary = join(binariesDir(), 'kubectl');
  const dir = join(options.stateDir, 'demo');
  await mkdir(dir, { recursive: true });
  const issuerKey = join(options.stateDir, 'twokey', 'change.jwk.json');

  const show = async (typed: string, file: string, args: readonly string[], env?: NodeJS.ProcessEnv): Promise<Result> => {
    print(`$ ${shorten(typed)}`);
    const result = await runCommand(kubeconfig, file, args, env ? { env } : {});
    const output = `${result.stdout}${result.stderr}`.trimEnd();
    if (output) print(shorten(output));
    print();
    return result;
  };
  const kubectl = (...args: string[]) => show(`kubectl ${args.join(' ')}`, kubectlBinary, args);
  const twokey = (...args: string[]) => show(`twokey ${args.join(' ')}`, process.execPath, [TWOKEY_BIN, ...args]);
  const save = async (name: string, object: object) => {
    const path = join(dir, name);
    await writeFile(path, stringify(object, { lineWidth: 0 }));
    return path;
  };
  const approveAs = async (approver: string, digest: string, file: string, action: 'deploy' | 'delete' = 'deploy') => {
    const args = approveArgs(issuerKey, ISSUER, CLUSTER, { approver, change: 'CHG1001', digest, file, action });
    const result = await show(`twokey ${args.join(' ')}`, process.execPath, [TWOKEY_BIN, ...args]);
    return result.stdout.trim();
  };

  print('# payments is critical: its workloads and its deletion need two approvals.');
  await kubectl('create', 'namespace', 'payments');
  await kubectl('label', 'namespace', 'payments', 'twokey.dev/critical=true');

  print('# A deploy without approvals is refused; the refusal names the digest to approve.');
  const api = await save('api.yaml', deployment({ namespace: 'payments' }));
  const refused = await kubectl('apply', '--dry-run=server', '-f', api);
  const digest = digestIn(refused.stderr);
  await twokey('digest', '--server', '-f', api);

  print('# The change system mints one approval per approver, bound to that digest.');
  const tokens = { bob: await approveAs('bob', digest, api), carol: await approveAs('carol', digest, api) };
  const approved = await save('api-approved.yaml', deployment({ namespace: 'payments', annotations: approvalAnnotations(tokens) }));
  print(`# ${approved} carries them as approval.twokey.dev/bob and approval.twokey.dev/carol.`);
  await kubectl('apply', '-f', approved);

  print('# Any other spec is another change: refused. Scaling is not a deploy.');
  await kubectl('-n', 'payments', 'set', 'image', 'deployment/api', 'api=registry.example/api:6.6.6');
  await kubectl('-n', 'payments', 'scale', 'deployment/api', '--replicas=3');

  print('# The agent "deletes and recreates the environment": refused.');
  const deletion = await kubectl('--context', 'agent', 'delete', 'namespace', 'payments', '--wait=false');
  const deletionDigest = digestIn(deletion.stderr);
  const namespaceFile = await save('payments.yaml', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'payments' } });
  print('# With two approvals of the deletion attached, it is admitted, and the namespace controller empties it.');
  const deleteTokens = {
    bob: await approveAs('bob', deletionDigest, namespaceFile, 'delete'),
    carol: await approveAs('carol', deletionDigest, namespaceFile, 'delete'),
  };
  await kubectl('annotate', 'namespace', 'payments', ...Object.entries(approvalAnnotations(deleteTokens)).map(([k, v]) => `${k}=${v}`));
  await kubectl('--context', 'agent', 'delete', 'namespace', 'payments', '--timeout=120s');
  await kubectl('get', 'namespace', 'payments');
  print('# twokey recorded what it decided:');
  await kubectl('get', 'events', '-A', '--field-selector', 'source=twokey');
}
