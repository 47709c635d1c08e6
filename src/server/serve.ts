/**
 * Runs the webhook: loads policy, keys and certificate, serves HTTPS, keeps all three current,
 * and drains in-flight reviews on shutdown.
 */
import type { AddressInfo } from 'node:net';
import type { Server as TlsServer } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { DigestWorker } from '../change/digest-worker.ts';
import { ConfigStore } from '../config/store.ts';
import type { FilePoller } from '../config/watch.ts';
import type { NamespaceView } from '../decision/gate.ts';
import type { Verdict } from '../decision/verdict.ts';
import { describeError } from '../errors.ts';
import type { AdmissionRequest } from '../kubernetes/admission.ts';
import { buildApp, type ReadinessCheck } from './app.ts';
import { health } from './health.ts';
import { type ClientLimitOptions, ClientLimits, MIB, timeoutOptions } from './limits.ts';
import { createMetrics, metricsRoute, type TwokeyMetrics } from './metrics.ts';
import { readTlsFiles, type TlsFiles, type TlsMaterial, watchTlsFiles } from './tls.ts';

/** What a cluster connection adds to the server: namespace labels, readiness, events. */
export interface ClusterIntegration extends ReadinessCheck {
  readonly namespaces: NamespaceView;
  readonly onDecision?: ((request: AdmissionRequest, verdict: Verdict) => void) | undefined;
  stop(): Promise<void> | void;
}

/** How long in-flight reviews may take to finish after the server stops accepting new ones. */
const SHUTDOWN_GRACE_MS = 10_000;

/** The plain-HTTP metrics listener serves a few scrapers, and reads no bodies worth the name. */
const METRICS_BODY_LIMIT = 64 * 1024;
const METRICS_CLIENT_LIMITS: ClientLimitOptions = {
  maxConnections: 64,
  maxConnectionsPerPeer: 16,
  bodyMemory: MIB,
  bodyMemoryPerPeer: 256 * 1024,
  parseMemory: 2 * MIB,
};

export interface ServeOptions {
  readonly policyPath: string;
  /** The serving certificate: files, read now and again whenever they change, or material held in memory. */
  readonly tls: TlsFiles | TlsMaterial;
  readonly host: string;
  readonly port: number;
  readonly logger: Logger;
  readonly pollIntervalMs?: number;
  readonly bodyLimit?: number;
  /** What clients may hold of the webhook listener (defaults: DEFAULT_CLIENT_LIMITS). */
  readonly limits?: ClientLimitOptions;
  /** Also serve GET /metrics over plain HTTP on this port, for scrapers that do not speak the webhook's TLS. */
  readonly metricsPort?: number;
  /** Connects to the cluster once metrics and logger exist; without it the server judges from the policy and objects alone. */
  readonly cluster?: (context: { logger: Logger; metrics: TwokeyMetrics }) => Promise<ClusterIntegration>;
}

export interface RunningServer {
  readonly app: FastifyInstance;
  readonly store: ConfigStore;
  readonly url: string;
  readonly port: number;
  readonly metricsUrl?: string;
  /** Stops reporting ready, waits `drainMs`, then closes after in-flight reviews finish. */
  shutdown(drainMs?: number): Promise<void>;
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { logger } = options;
  const metrics = createMetrics();
  const pollIntervalMs = options.pollIntervalMs ?? 5000;
  const store = new ConfigStore({
    policyPath: options.policyPath,
    pollIntervalMs,
    observer: {
      reloaded(kind, source) {
        metrics.reloads.inc({ kind, result: 'ok' });
        logger.info({ kind, source }, `${kind} reloaded`);
      },
      failed(kind, source, error) {
        metrics.reloads.inc({ kind, result: 'error' });
        logger.error({ kind, source, error: describeError(error) }, `${kind} reload refused; the last good version stays in force`);
      },
      keysLoaded(set, source) {
        if (set.skipped.length > 0) logger.warn({ issuer: set.issuer, source, skipped: set.skipped }, 'JWKS keys skipped');
        if (set.keys.size === 0)
          logger.warn({ issuer: set.issuer, source }, 'the JWKS holds no usable key: no approval of this issuer counts');
      },
    },
  });
  await store.start();
  for (const reason of store.notReady()) logger.warn({ reason }, 'not ready yet');

  const tlsFiles = 'certPath' in options.tls ? options.tls : undefined;
  const tls = 'certPath' in options.tls ? await readTlsFiles(options.tls) : options.tls;

  const cluster = options.cluster ? await options.cluster({ logger, metrics }) : undefined;
  // Large specs are canonicalised on a worker thread, started by the first one and stopped when idle.
  const digestWorker = new DigestWorker();
  let app: FastifyInstance;
  try {
    app = buildApp({
      config: store,
      readiness: [store, ...(cluster ? [cluster] : [])],
      ...(cluster ? { namespaces: cluster.namespaces } : {}),
      ...(cluster?.onDecision ? { onDecision: cluster.onDecision } : {}),
      logger,
      metrics,
      https: tls,
      offThread: digestWorker.digest,
      ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
    });
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    store.stop();
    await cluster?.stop();
    await digestWorker.close();
    throw error;
  }
  const port = (app.server.address() as AddressInfo).port;

  let metricsApp: FastifyInstance | undefined;
  if (options.metricsPort !== undefined) {
    metricsApp = Fastify({ logger: false, bodyLimit: METRICS_BODY_LIMIT, ...timeoutOptions() });
    new ClientLimits(METRICS_CLIENT_LIMITS, METRICS_BODY_LIMIT, (limit) => metrics.shed.inc({ limit })).guard(metricsApp, false);
    metricsApp.register(metricsRoute, { registry: metrics.registry });
    metricsApp.register(health, {});
    await metricsApp.listen({ host: options.host, port: options.metricsPort });
  }

  let tlsPoller: FilePoller | undefined;
  if (tlsFiles) {
    tlsPoller = await watchTlsFiles(app.server as unknown as TlsServer, tlsFiles, pollIntervalMs, {
      reloaded() {
        metrics.reloads.inc({ kind: 'tls', result: 'ok' });
        logger.info('TLS certificate reloaded');
      },
      failed(error) {
        metrics.reloads.inc({ kind: 'tls', result: 'error' });
        logger.warn({ error: describeError(error) }, 'TLS certificate reload refused; the current one stays in use');
      },
    });
  }

  // Where a local client reaches the listeners (a wildcard address is reached on loopback).
  const bracketed = options.host.includes(':') ? `[${options.host}]` : options.host;
  const host = bracketed === '0.0.0.0' || bracketed === '[::]' ? '127.0.0.1' : bracketed;
  let shuttingDown: Promise<void> | undefined;
  return {
    app,
    store,
    port,
    url: `https://${host}:${port}`,
    ...(metricsApp ? { metricsUrl: `http://${host}:${(metricsApp.server.address() as AddressInfo).port}/metrics` } : {}),
    shutdown(drainMs = 0) {
      shuttingDown ??= (async () => {
        app.markDraining();
        if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs));
        // In-flight reviews finish; a connection still open after the grace period is cut.
        const grace = setTimeout(() => app.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        await app.close();
        clearTimeout(grace);
        await metricsApp?.close();
        tlsPoller?.stop();
        store.stop();
        await digestWorker.close();
        await cluster?.stop();
      })();
      return shuttingDown;
    },
  };
}
