/**
 * `twokey probe`: checks that a running webhook answers as kube-apiserver needs it to, by calling
 * it exactly as the apiserver does. The chart's `helm test` runs it; so can an operator.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { TwokeyError } from '../errors.ts';
import type { JsonObject } from '../json.ts';
import { buildAdmissionReview } from '../kubernetes/review-builder.ts';
import { callWebhook, type WebhookOutcome } from '../kubernetes/webhook-client.ts';
import { durationOption, EXIT, type Terminal } from './common.ts';

interface ProbeFlags {
  url: string;
  caFile: string;
  serverName?: string;
  timeout: number;
}

function probeDeployment(): JsonObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'twokey-probe',
      namespace: 'twokey-probe',
      uid: '00000000-0000-4000-8000-00000000b0b0',
      labels: { app: 'twokey-probe' },
    },
    spec: {
      selector: { matchLabels: { app: 'twokey-probe' } },
      template: {
        metadata: { labels: { app: 'twokey-probe' } },
        spec: { containers: [{ name: 'probe', image: 'registry.invalid/probe:1' }] },
      },
    },
  };
}

export function registerProbe(program: Command, terminal: Terminal): void {
  const { out } = terminal;
  program
    .command('probe')
    .description('check that a running twokey webhook answers as kube-apiserver needs (exit 0 when it does)')
    .requiredOption('--url <url>', 'the webhook base URL, e.g. https://twokey.twokey.svc:443')
    .requiredOption('--ca-file <file>', 'the CA bundle the apiserver trusts for it')
    .option('--server-name <name>', 'the name its certificate must carry (default: the URL host)')
    .option('--timeout <duration>', 'time allowed per call, as the webhook timeoutSeconds', durationOption, 5)
    .action(async (flags: ProbeFlags) => {
      const base = new URL(flags.url);
      let caBundle: string;
      try {
        caBundle = await readFile(flags.caFile, 'utf8');
      } catch (error) {
        throw new TwokeyError('ERR_USAGE', `cannot read --ca-file ${flags.caFile}: ${(error as Error).message}`);
      }
      const endpoint = (path: string) => ({
        url: new URL(path, base).href,
        serverName: flags.serverName ?? base.hostname,
        caBundle,
        webhookName: 'probe.twokey.dev',
        timeoutSeconds: Math.max(1, Math.ceil(flags.timeout)),
      });
      const review = () =>
        buildAdmissionReview({ operation: 'CREATE', object: probeDeployment(), username: 'system:twokey:probe', dryRun: true });
      const checks: Array<[string, Promise<WebhookOutcome>, (o: WebhookOutcome) => boolean]> = [
        [
          'POST /validate admits a Deployment that is not critical',
          callWebhook(endpoint('/validate'), review()),
          (o) => o.kind === 'allowed',
        ],
        [
          'POST /validate/critical refuses a critical Deployment without approvals',
          callWebhook(endpoint('/validate/critical'), review()),
          (o) =>
            o.kind === 'denied' &&
            o.code === 403 &&
            o.message.includes('denied the request: twokey: deploy of deployments.apps twokey-probe/twokey-probe refused'),
        ],
      ];
      let healthy = true;
      for (const [what, pending, expected] of checks) {
        const outcome = await pending;
        const ok = expected(outcome);
        healthy &&= ok;
        out(
          `${ok ? 'ok  ' : 'FAIL'} ${what}${ok ? '' : `: got ${outcome.kind === 'failed' ? outcome.message : outcome.kind === 'denied' ? `denied: ${outcome.message}` : 'allowed'}`}`,
        );
      }
      terminal.exitCode = healthy ? EXIT.ok : EXIT.refused;
    });
}
