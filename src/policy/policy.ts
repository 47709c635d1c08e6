/**
 * The policy in force: the validated, normalised form of the policy file.
 */
import type { ApprovalRule, ApproverPolicy } from './approvers.ts';
import type { IdentityPolicy } from './identities.ts';
import type { Mode } from './schema.ts';

export interface IssuerPolicy {
  readonly issuer: string;
  readonly jwks: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'url'; readonly url: URL };
  /** How often a JWKS URL is fetched again in the background. */
  readonly refreshSeconds: number;
}

/** The break-glass issuer: its keys, how long its tokens may live, and how soon two approvals must follow. */
export interface BreakGlassPolicy extends IssuerPolicy {
  readonly maxTtlSeconds: number;
  readonly reviewWindowSeconds: number;
}

export interface Policy {
  readonly cluster: string;
  readonly issuers: readonly IssuerPolicy[];
  readonly required: number;
  readonly maxTtlSeconds: number;
  readonly clockSkewSeconds: number;
  readonly algorithms: ReadonlySet<string>;
  readonly criticalNamespaces: ReadonlySet<string>;
  /** Kubernetes user names whose deletes are cluster cleanup, by the role each plays, compared
   * exactly: the apiserver names its controllers exactly, and a look-alike name (other case,
   * full-width letters, a trailing space) is another user. No name plays both roles. */
  readonly exemptDeleters: {
    readonly namespaceController: ReadonlySet<string>;
    readonly garbageCollector: ReadonlySet<string>;
  };
  /** warn: a refusal on critical scope is admitted and reported instead. Only the policy file sets it. */
  readonly mode: Mode;
  /** Namespaces in warn mode while the mode is enforce. */
  readonly warnNamespaces: ReadonlySet<string>;
  readonly breakGlass?: BreakGlassPolicy;
  /** Approval annotations read per object; the rest are reported as not read. */
  readonly maxApprovalAnnotations: number;
  readonly maxTokenBytes: number;
  /** Rules mapping the Kubernetes user onto an approver identity; undefined: the user name itself. */
  readonly identities?: IdentityPolicy;
  /** Approvals count only when countersigned by the approver's registered key. */
  readonly countersign: boolean;
  /** The approvers registry (keys and groups); undefined when the policy has none. */
  readonly approvers?: readonly ApproverPolicy[];
  /** Quorum rules by namespace, first match wins; none matching: `required` without groups. */
  readonly approvalRules: readonly ApprovalRule[];
}

export const POLICY_DEFAULTS = {
  required: 2,
  maxTtl: '24h',
  clockSkew: '60s',
  algorithms: ['EdDSA', 'ES256'],
  exemptDeleters: {
    namespaceController: ['system:serviceaccount:kube-system:namespace-controller'],
    garbageCollector: ['system:serviceaccount:kube-system:generic-garbage-collector'],
  },
  jwksRefresh: '5m',
  mode: 'enforce',
  breakGlassMaxTtl: '1h',
  breakGlassReviewWindow: '24h',
  maxApprovalAnnotations: 50,
  maxTokenBytes: 8192,
} as const;

/** The cleanup role whose deletes are exempt: the namespace controller empties a namespace being deleted, the garbage collector deletes what lost its owners. */
export type DeleterRole = 'namespaceController' | 'garbageCollector';

const DELETER_ROLES: readonly DeleterRole[] = ['namespaceController', 'garbageCollector'];

/** The role a user's deletes are exempt for, if any. */
export function exemptDeleterRole(policy: Policy, username: string): DeleterRole | undefined {
  return DELETER_ROLES.find((role) => policy.exemptDeleters[role].has(username));
}

/** The longest a break-glass token may live, whatever the policy says. */
export const BREAK_GLASS_MAX_TTL_LIMIT = 4 * 3600;

/**
 * Whether refusals of a change to this namespace (a Namespace's own name for a Namespace) are
 * admitted and reported instead: by the policy's mode, or its list of namespaces in warn mode.
 * Nothing on an object or a namespace can set it.
 */
export function warnScope(policy: Policy, namespace: string): 'policy' | 'namespace' | undefined {
  if (policy.mode === 'warn') return 'policy';
  return policy.warnNamespaces.has(namespace) ? 'namespace' : undefined;
}
