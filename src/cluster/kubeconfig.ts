/**
 * How twokey reaches the Kubernetes API: the in-cluster service account in a pod, or a
 * kubeconfig (the file given, $KUBECONFIG or ~/.kube/config) like kubectl.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { TwokeyError } from '../errors.ts';

export interface KubeConfigOptions {
  readonly kubeconfig?: string;
  readonly context?: string;
}

export function runningInCluster(): boolean {
  return Boolean(process.env.KUBERNETES_SERVICE_HOST && process.env.KUBERNETES_SERVICE_PORT);
}

export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else if (runningInCluster() && !process.env.KUBECONFIG) kc.loadFromCluster();
    else kc.loadFromDefault();
    if (options.context) {
      if (!kc.getContextObject(options.context)) throw new Error(`context ${JSON.stringify(options.context)} is not in the kubeconfig`);
      kc.setCurrentContext(options.context);
    }
  } catch (error) {
    throw new TwokeyError('ERR_CLUSTER', `cannot load the Kubernetes configuration: ${(error as Error).message}`, { cause: error });
  }
  if (!kc.getCurrentCluster())
    throw new TwokeyError('ERR_CLUSTER', 'the kubeconfig names no current cluster (set --context or a current-context)');
  return kc;
}
