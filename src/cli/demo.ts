/**
 * `twokey demo`: the two-person rule end to end on loopback. A real twokey server over HTTPS,
 * called exactly as kube-apiserver calls it, each answer printed as kubectl would print it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import type { JWK } from 'jose';
import type { Action } from '../change/digest.ts';
import { DIGEST_PATTERN } from '../change/digest.ts';
import { createCertificateAuthority, issueServingCertificate } from '../dev/certificates.ts';
import { devPolicyYaml } from '../dev/state.ts';
import type { JsonObject } from '../json.ts';
import { generateIssuerKey, mintApproval } from '../keys/signing.ts';
import type { Operation } from '../kubernetes/admission.ts';
import { buildAdmissionReview } from '../kubernetes/review-builder.ts';
import { callWebhook, kubectlLines, type WebhookOutcome } from '../kubernetes/webhook-client.ts';
import { createLogger } from '../server/logger.ts';
import { startServer } from '../server/serve.ts';
import { EXIT, type Terminal } from './common.ts';

const CLUSTER = 'demo-cluster';
const ISSUER = 'https://change.example.com';
const SERVICE = 'twokey.twokey.svc';

function apiDeployment(image: string, annotations: Record<string, string> = {}): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'api',
      namespace: 'payments',
      uid: '5b1f3a52-6f0e-4c4e-9d7a-0c3d2f7e9a11',
      generation: 1,
      labels: { app: 'api' },
      annotations,
    },
    spec: {
      replicas: 3,
      selector: { matchLabels: { app: 'api' } },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
      template: {
        metadata: { labels: { app: 'api' } },
        spec: {
          containers: [
            {
              name: 'api',
              image,
              imagePullPolicy: 'IfNotPresent',
              terminationMessagePath: '/dev/termination-log',
              terminationMessagePolicy: 'File',
            },
          ],
          restartPolicy: 'Always',
          dnsPolicy: 'ClusterFirst',
          schedulerName: 'default-scheduler',
          terminationGracePeriodSeconds: 30,
          securityContext: {},
        },
      },
    },
  };
}

function paymentsNamespace(uid: string, annotations: Record<string, string> = {}): JsonObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: 'payments',
      uid,
      labels: { 'kubernetes.io/metadata.name': 'payments', 'twokey.dev/critical': 'true' },
      annotations,
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

export async function runDemo(print: (line: string) => void): Promise<boolean> {
  const dir = await mkdtemp(join(tmpdir(), 'twokey-demo-'));
  const ca = await createCertificateAuthority('twokey demo CA', 1);
  const serving = await issueServingCertificate(ca, { dns: [SERVICE] }, 1);
  const issuer = await generateIssuerKey('EdDSA', 'change-2026-11');
  await writeFile(join(dir, 'tls.crt'), serving.certPem);
  await writeFile(join(dir, 'tls.key'), serving.keyPem);
  await writeFile(join(dir, 'jwks.json'), JSON.stringify(issuer.jwks));
  await writeFile(join(dir, 'policy.yaml'), devPolicyYaml(CLUSTER, ISSUER, 'jwks.json'));
  const server = await startServer({
    policyPath: join(dir, 'policy.yaml'),
    tls: { certPath: join(dir, 'tls.crt'), keyPath: join(dir, 'tls.key') },
    host: '127.0.0.1',
    port: 0,
    logger: createLogger('silent'),
  });

  let allAsExpected = true;
  let step = 0;
  const endpoint = (path: string, webhookName: string) => ({
    url: `https://127.0.0.1:${server.port}${path}`,
    serverName: SERVICE,
    caBundle: ca.certPem,
    webhookName,
  });
  const send = async (
    title: string,
    command: string,
    review: { operation: Operation; object?: JsonObject | null; oldObject?: JsonObject | null; user: string },
    expect: 'allowed' | 'denied',
    success: string,
    source?: { verb: string; file: string },
  ): Promise<WebhookOutcome> => {
    step += 1;
    print('');
    print(`── ${step}. ${title}`);
    print(`$ ${command}`);
    const subject = review.object ?? review.oldObject;
    const isNamespace = subject?.kind === 'Namespace';
    const outcome = await callWebhook(
      endpoint('/validate', isNamespace ? 'namespaces.twokey.dev' : 'workloads.twokey.dev'),
      buildAdmissionReview({ ...review, username: review.user, groups: ['system:authenticated'] }),
    );
    for (const line of kubectlLines(outcome, success, source)) print(line);
    if (outcome.kind !== expect) {
      allAsExpected = false;
      print(`!! expected the request to be ${expect}`);
    }
    return outcome;
  };
  const digestIn = (outcome: WebhookOutcome): string => {
    const match = outcome.kind === 'denied' ? /sha256:[0-9a-f]{64}/.exec(outcome.message) : null;
    if (!match || !DIGEST_PATTERN.test(match[0])) throw new Error('the refusal did not name a digest');
    return match[0];
  };
  const approval = (
    approver: string,
    change: string,
    action: Action,
    digest: string,
    target: { resource: string; namespace: string; name: string },
  ) =>
    mintApproval({
      privateJwk: issuer.privateJwk as JWK,
      issuer: ISSUER,
      audience: CLUSTER,
      approver,
      change,
      binding: { action, ...target, digest },
      ttlSeconds: 3600,
    });

  try {
    print(`twokey demo: a webhook on https://127.0.0.1:${server.port} (certificate for ${SERVICE}), cluster "${CLUSTER}",`);
    print('namespace "payments" critical, two approvals from a trusted change system required. alice is on call.');
    const api = { resource: 'deployments.apps', namespace: 'payments', name: 'api' };
    const v1 = apiDeployment('registry.example.com/api:1.4.0');

    const first = await send(
      'alice deploys payments/api with no approvals',
      'kubectl apply -f api.yaml',
      { operation: 'CREATE', object: v1, user: 'alice@example.com' },
      'denied',
      'deployment.apps/api created',
      { verb: 'creating', file: 'api.yaml' },
    );
    const deployDigest = digestIn(first);
    print(`(the refusal names the digest to approve: ${deployDigest})`);

    const bob = await approval('bob@example.com', 'CHG0031337', 'deploy', deployDigest, api);
    await send(
      'bob approves change CHG0031337 in the change system; one approval is attached',
      `twokey approve --approver bob@example.com --change CHG0031337 --digest ${deployDigest.slice(0, 19)}… -f api.yaml`,
      {
        operation: 'CREATE',
        object: apiDeployment('registry.example.com/api:1.4.0', { 'approval.twokey.dev/bob': bob }),
        user: 'alice@example.com',
      },
      'denied',
      'deployment.apps/api created',
      { verb: 'creating', file: 'api.yaml' },
    );

    const aliceSelf = await approval('Alice@Example.com', 'CHG0031337', 'deploy', deployDigest, api);
    await send(
      'alice approves her own change (as "Alice@Example.com")',
      'kubectl apply -f api.yaml   # with approvals from bob and alice',
      {
        operation: 'CREATE',
        object: apiDeployment('registry.example.com/api:1.4.0', { 'approval.twokey.dev/alice': aliceSelf, 'approval.twokey.dev/bob': bob }),
        user: 'alice@example.com',
      },
      'denied',
      'deployment.apps/api created',
      { verb: 'creating', file: 'api.yaml' },
    );

    const carol = await approval('carol@example.com', 'CHG0031337', 'deploy', deployDigest, api);
    const approved = { 'approval.twokey.dev/bob': bob, 'approval.twokey.dev/carol': carol };
    await send(
      'carol approves too: two people, neither of them alice',
      'kubectl apply -f api.yaml   # with approvals from bob and carol',
      { operation: 'CREATE', object: apiDeployment('registry.example.com/api:1.4.0', approved), user: 'alice@example.com' },
      'allowed',
      'deployment.apps/api created',
      { verb: 'creating', file: 'api.yaml' },
    );

    await send(
      'the image is changed after approval, and applied with the same approvals',
      'kubectl apply -f api.yaml   # image api:1.4.1-hotfix',
      {
        operation: 'UPDATE',
        object: apiDeployment('registry.example.com/api:1.4.1-hotfix', approved),
        oldObject: apiDeployment('registry.example.com/api:1.4.0', approved),
        user: 'alice@example.com',
      },
      'denied',
      'deployment.apps/api configured',
      { verb: 'patching', file: 'api.yaml' },
    );

    const nsUid = 'c0ffee00-1d2e-4f5a-8b9c-0d1e2f3a4b5c';
    const deleteNs = await send(
      'an agent "cleans up" by deleting the payments namespace',
      'kubectl delete namespace payments',
      { operation: 'DELETE', oldObject: paymentsNamespace(nsUid), user: 'system:serviceaccount:ci:agent' },
      'denied',
      'namespace "payments" deleted',
    );
    const deleteDigest = digestIn(deleteNs);
    const nsTarget = { resource: 'namespaces', namespace: '', name: 'payments' };
    const nsApprovals = {
      'approval.twokey.dev/bob': await approval('bob@example.com', 'CHG0031400', 'delete', deleteDigest, nsTarget),
      'approval.twokey.dev/dave': await approval('dave@example.com', 'CHG0031400', 'delete', deleteDigest, nsTarget),
    };
    await send(
      'bob and dave approve CHG0031400; the approvals are annotated onto the namespace (metadata only: not gated)',
      'kubectl annotate namespace payments approval.twokey.dev/bob=… approval.twokey.dev/dave=…',
      {
        operation: 'UPDATE',
        object: paymentsNamespace(nsUid, nsApprovals),
        oldObject: paymentsNamespace(nsUid),
        user: 'alice@example.com',
      },
      'allowed',
      'namespace/payments annotated',
    );
    await send(
      "the deletion, now approved and bound to this namespace's UID",
      'kubectl delete namespace payments',
      { operation: 'DELETE', oldObject: paymentsNamespace(nsUid, nsApprovals), user: 'alice@example.com' },
      'allowed',
      'namespace "payments" deleted',
    );
    await send(
      'payments is recreated (new UID) with the old approvals copied over, and deleted again',
      'kubectl delete namespace payments',
      { operation: 'DELETE', oldObject: paymentsNamespace('7e57ab1e-0000-4000-8000-000000000002', nsApprovals), user: 'alice@example.com' },
      'denied',
      'namespace "payments" deleted',
    );
    print('');
    print(allAsExpected ? 'Every step got the verdict the two-person rule calls for.' : 'Some step did not get the expected verdict.');
    return allAsExpected;
  } finally {
    await server.shutdown();
    await rm(dir, { recursive: true, force: true });
  }
}

export function registerDemo(program: Command, terminal: Terminal): void {
  program
    .command('demo')
    .description('walk through the two-person rule on loopback: refusals, approvals, an admitted deploy, a guarded namespace deletion')
    .action(async () => {
      terminal.exitCode = (await runDemo(terminal.out)) ? EXIT.ok : EXIT.refused;
    });
}
