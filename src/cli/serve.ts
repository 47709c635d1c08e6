/**
 * `twokey serve`: the webhook server, with graceful shutdown on SIGTERM.
 */
import { relative } from 'node:path';
import type { Command } from 'commander';
import type { LevelWithSilent, Logger } from 'pino';
import { connectCluster } from '../cluster/integration.ts';
import { loadKubeConfig, runningInCluster } from '../cluster/kubeconfig.ts';
import { describeError } from '../errors.ts';
import { DEFAULT_BODY_LIMIT } from '../server/app.ts';
import { checkClientLimits, DEFAULT_CLIENT_LIMITS, MIB } from '../server/limits.ts';
import { createLogger, LOG_LEVELS } from '../server/logger.ts';
import type { TwokeyMetrics } from '../server/metrics.ts';
import { type RunningServer, startServer } from '../server/serve.ts';
import type { TlsFiles, TlsMaterial } from '../server/tls.ts';
import { durationOption, portOption, positiveIntegerOption, type Terminal, usageError } from './common.ts';

interface ServeFlags {
  config?: string;
  tlsCert?: string;
  tlsKey?: string;
  port: number;
  host?: string;
  kubeconfig?: string;
  context?: string;
  events: boolean;
  logLevel: LevelWithSilent;
  shutdownDelay: number;
  pollInterval: number;
  bodyLimitMib: number;
  maxConnections: number;
  maxConnectionsPerPeer: number;
  bodyMemoryMib: number;
  bodyMemoryPerPeerMib: number;
  parseMemoryMib: number;
  metricsPort?: number;
  dev?: boolean;
  stateDir: string;
}

export function registerServe(program: Command, { err }: Terminal): void {
  program
    .command('serve')
    .description('run the validating admission webhook over HTTPS')
    .option('--config <policy>', 'the policy file (YAML); reloaded when it changes')
    .option('--tls-cert <file>', 'serving certificate (PEM); reloaded when it changes')
    .option('--tls-key <file>', 'serving key (PEM)')
    .option('--port <port>', 'HTTPS port', portOption, 8443)
    .option('--host <address>', 'address to listen on (default 0.0.0.0; 127.0.0.1 with --dev)')
    .option('--kubeconfig <file>', 'kubeconfig for watching namespaces and recording Events (in a pod the in-cluster config is used)')
    .option('--context <name>', 'kubeconfig context (of --kubeconfig, or of the default kubeconfig); implies using that cluster')
    .option('--no-events', 'do not record Kubernetes Events about decisions')
    .option('--log-level <level>', `log level (${LOG_LEVELS.join(', ')})`, 'info')
    .option('--shutdown-delay <duration>', 'on SIGTERM, report unready this long before closing, so endpoints drain', durationOption, 0)
    .option('--poll-interval <duration>', 'how often policy, JWKS and certificate files are checked for changes', durationOption, 5)
    .option('--metrics-port <port>', 'also serve GET /metrics over plain HTTP on this port', portOption)
    .option('--body-limit-mib <n>', 'largest review body accepted, in MiB', positiveIntegerOption, DEFAULT_BODY_LIMIT / MIB)
    .option('--max-connections <n>', 'connections open at once', positiveIntegerOption, DEFAULT_CLIENT_LIMITS.maxConnections)
    .option(
      '--max-connections-per-peer <n>',
      'connections open at once from one address (kube-apiserver may come through one)',
      positiveIntegerOption,
      DEFAULT_CLIENT_LIMITS.maxConnectionsPerPeer,
    )
    .option(
      '--body-memory-mib <n>',
      'review bodies held at once, arriving or being judged, in MiB',
      positiveIntegerOption,
      DEFAULT_CLIENT_LIMITS.bodyMemory / MIB,
    )
    .option(
      '--body-memory-per-peer-mib <n>',
      'review bodies held at once for one address, in MiB',
      positiveIntegerOption,
      DEFAULT_CLIENT_LIMITS.bodyMemoryPerPeer / MIB,
    )
    .option(
      '--parse-memory-mib <n>',
      'reviews held parsed at once, at their estimated size as JavaScript values, in MiB',
      positiveIntegerOption,
      DEFAULT_CLIENT_LIMITS.parseMemory / MIB,
    )
    .option('--dev', 'development mode: make or reuse a policy, certificate and change-system key in --state-dir and serve on loopback')
    .option('--state-dir <dir>', 'state folder for --dev', '.twokey-dev')
    .action(async (flags: ServeFlags) => {
      if (!LOG_LEVELS.includes(flags.logLevel)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
      if (Boolean(flags.tlsCert) !== Boolean(flags.tlsKey)) throw usageError('--tls-cert and --tls-key go together');
      const bodyLimit = flags.bodyLimitMib * MIB;
      const limits = {
        maxConnections: flags.maxConnections,
        maxConnectionsPerPeer: flags.maxConnectionsPerPeer,
        bodyMemory: flags.bodyMemoryMib * MIB,
        bodyMemoryPerPeer: flags.bodyMemoryPerPeerMib * MIB,
        parseMemory: flags.parseMemoryMib * MIB,
      };
      checkClientLimits(limits, bodyLimit);
      let policyPath = flags.config;
      let tls: TlsFiles | TlsMaterial | undefined =
        flags.tlsCert && flags.tlsKey ? { certPath: flags.tlsCert, keyPath: flags.tlsKey } : undefined;
      // Development tooling is loaded only when asked for.
      const devTools = flags.dev ? await import('../dev/state.ts') : undefined;
      const dev = devTools ? await devTools.ensureDevState(flags.stateDir) : undefined;
      if (dev) {
        policyPath ??= dev.policy;
        tls ??= { certPath: dev.tlsCert, keyPath: dev.tlsKey };
      }
      if (!policyPath) throw usageError('--config is required (or use --dev for a development setup)');
      const host = flags.host ?? (flags.dev ? '127.0.0.1' : '0.0.0.0');
      const logger = createLogger(flags.logLevel);
      // A background task that fails (a watch, a refetch) must not take the webhook down with it;
      // the tasks themselves retry and report through readiness.
      process.on('unhandledRejection', (reason) => {
        logger.error({ error: describeError(reason) }, 'a background task failed unexpectedly; serving on');
      });
      // --context asks for a cluster as much as --kubeconfig does (from the default kubeconfig).
      const useCluster = Boolean(flags.kubeconfig || flags.context) || (runningInCluster() && !flags.dev);
      const cluster = useCluster
        ? async (context: { logger: Logger; metrics: TwokeyMetrics }) => {
            const kc = loadKubeConfig({
              ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}),
              ...(flags.context ? { context: flags.context } : {}),
            });
            logger.info({ server: kc.getCurrentCluster()?.server }, 'watching namespaces through the Kubernetes API');
            return connectCluster(kc, { ...context, events: flags.events });
          }
        : undefined;
      if (!useCluster) logger.info('no cluster configured: namespaces are critical by the policy list and their own labels only');
      const throwaway = tls === undefined;
      if (tls === undefined) {
        const { throwawayServingCertificate } = await import('../dev/certificates.ts');
        const serving = await throwawayServingCertificate();
        tls = { cert: serving.certPem, key: serving.keyPem };
      }
      let server: RunningServer;
      try {
        server = await startServer({
          policyPath,
          tls,
          host,
          port: flags.port,
          logger,
          pollIntervalMs: flags.pollInterval * 1000,
          ...(cluster ? { cluster } : {}),
          ...(flags.metricsPort !== undefined ? { metricsPort: flags.metricsPort } : {}),
          bodyLimit,
          limits,
        });
      } catch (error) {
        logger.fatal({ error: describeError(error) }, 'cannot start');
        throw error;
      }
      if (throwaway) logger.warn('no --tls-cert/--tls-key given: serving with a throwaway self-signed certificate for localhost');
      logger.info({ url: server.url, policy: policyPath }, 'twokey is serving');
      if (dev && devTools) {
        const { DEV_CLUSTER, DEV_ISSUER } = devTools;
        const rel = (p: string) => relative(process.cwd(), p) || p;
        err(`twokey development server (${dev.created ? 'created' : 'reusing'} ${rel(dev.dir)}/)`);
        err(`  policy       ${rel(dev.policy)}   cluster ${DEV_CLUSTER}, critical namespace "payments"`);
        err(`  TLS          ${rel(dev.tlsCert)}, trust ${rel(dev.caCert)}`);
        err(`  change key   ${rel(dev.issuerKey)}   issuer ${DEV_ISSUER}`);
        err(`  listening    ${server.url}  (POST /validate, /validate/critical; GET /healthz /readyz /metrics)`);
        err('Try it:');
        err(`  curl --cacert ${rel(dev.caCert)} ${server.url}/readyz`);
        err(`  npx twokey check --config ${rel(dev.policy)} -f examples/deployment.yaml --user alice`);
        err(`  npx twokey approve --private-key ${rel(dev.issuerKey)} --issuer ${DEV_ISSUER} --audience ${DEV_CLUSTER} \\`);
        err('      --approver bob --change CHG1001 -f examples/deployment.yaml');
        err('  npx twokey demo      (the whole story, step by step)');
      }

      let signals = 0;
      const stop = (signal: string) => {
        signals += 1;
        if (signals > 1) process.exit(1);
        logger.info({ signal, drainSeconds: flags.shutdownDelay }, 'shutting down: draining in-flight reviews');
        server.shutdown(flags.shutdownDelay * 1000).then(
          () => {
            logger.info('stopped');
            process.exit(0);
          },
          (error: unknown) => {
            logger.error({ error: describeError(error) }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
    });
}
