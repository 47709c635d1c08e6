/**
 * The policy in force: the validated, normalised form of the policy file.
 */

export interface IssuerPolicy {
  readonly issuer: string;
  readonly jwks: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'url'; readonly url: URL };
  /** How often a JWKS URL is fetched again in the background. */
  readonly refreshSeconds: number;
}

export interface Policy {
  readonly cluster: string;
  readonly issuers: readonly IssuerPolicy[];
  readonly required: number;
  readonly maxTtlSeconds: number;
  readonly clockSkewSeconds: number;
  readonly algorithms: ReadonlySet<string>;
  readonly criticalNamespaces: ReadonlySet<string>;
  /** Kubernetes user names, compared exactly: the apiserver names its controllers exactly, and a
   * look-alike name (other case, full-width letters, a trailing space) is another user. */
  readonly exemptDeleters: ReadonlySet<string>;
  /** Approval annotations read per object; the rest are reported as not read. */
  readonly maxApprovalAnnotations: number;
  readonly maxTokenBytes: number;
}

export const POLICY_DEFAULTS = {
  required: 2,
  maxTtl: '24h',
  clockSkew: '60s',
  algorithms: ['EdDSA', 'ES256'],
  exemptDeleters: ['system:serviceaccount:kube-system:namespace-controller', 'system:serviceaccount:kube-system:generic-garbage-collector'],
  jwksRefresh: '5m',
  maxApprovalAnnotations: 50,
  maxTokenBytes: 8192,
} as const;

export function isExemptDeleter(policy: Policy, username: string): boolean {
  return policy.exemptDeleters.has(username);
}
