/**
 * What running in a cluster adds to the webhook: the namespace watch that `/validate` consults,
 * its readiness, and Events about decisions.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { TwokeyMetrics } from '../server/metrics.ts';
import type { ClusterIntegration } from '../server/serve.ts';
import { EventRecorder, type EventRecorderOptions } from './events.ts';
import { NamespaceCache, type NamespaceCacheOptions } from './namespaces.ts';
import { KubeRest } from './rest.ts';

export interface ClusterOptions {
  readonly logger: Logger;
  readonly metrics?: TwokeyMetrics;
  /** Record Kubernetes Events about decisions (default true). */
  readonly events?: boolean;
  readonly namespaceCache?: Partial<NamespaceCacheOptions>;
  readonly eventRecorder?: Partial<EventRecorderOptions>;
}

export async function connectCluster(
  kc: KubeConfig,
  options: ClusterOptions,
): Promise<ClusterIntegration & { readonly recorder?: EventRecorder }> {
  const base = { logger: options.logger, ...(options.metrics ? { metrics: options.metrics } : {}) };
  const namespaces = new NamespaceCache(kc, { ...base, ...options.namespaceCache });
  const recorder = options.events === false ? undefined : new EventRecorder(new KubeRest(kc), { ...base, ...options.eventRecorder });
  // Serving starts at once; /readyz stays unready until the first list arrives.
  void namespaces.start();
  return {
    namespaces,
    ...(recorder ? { recorder } : {}),
    notReady: () => namespaces.notReady(),
    onDecision: recorder ? (request, verdict) => recorder.record(request, verdict) : undefined,
    async stop() {
      await recorder?.flush();
      await namespaces.stop();
    },
  };
}
