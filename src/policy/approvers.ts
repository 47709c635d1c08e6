/**
 * The approvers registry and the quorum rules that read it (README, "Countersigned approvals" and
 * "Approver groups"): who may countersign with which keys, which groups each approver belongs to,
 * and how many approvals of which groups a change needs, per namespace. Groups come from this
 * file, never from a token: the policy file is protected, a change system's key is not proof of a
 * group.
 */
import { resolve } from 'node:path';
import Type from 'typebox';
import { type Identity, normalizeIdentity } from '../identity.ts';

const GroupName = Type.String({
  pattern: '^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$',
  description: 'a group name: lower case, digits, ".", "_", "-"',
});

export const ApproverSchema = Type.Object(
  {
    identity: Type.String({ minLength: 1, maxLength: 253, description: 'the approver, as approvals name them in sub' }),
    jwksFile: Type.Optional(Type.String({ minLength: 1, description: "path to the approver's public JWKS (relative to the policy file)" })),
    jwks: Type.Optional(Type.Object({ keys: Type.Array(Type.Object({}, { additionalProperties: true })) }, { additionalProperties: true })),
    groups: Type.Optional(Type.Array(GroupName, { uniqueItems: true })),
  },
  { additionalProperties: false },
);

export const ApprovalRuleSchema = Type.Object(
  {
    namespaces: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 253, description: 'a namespace name, or a prefix ending in *' }), {
        minItems: 1,
        uniqueItems: true,
      }),
    ),
    required: Type.Optional(Type.Integer({ minimum: 2, maximum: 20 })),
    groups: Type.Optional(
      Type.Array(Type.Object({ group: GroupName, atLeast: Type.Integer({ minimum: 1, maximum: 20 }) }, { additionalProperties: false }), {
        minItems: 1,
      }),
    ),
  },
  { additionalProperties: false },
);

type ApproverDocument = Type.Static<typeof ApproverSchema>;
type ApprovalRuleDocument = Type.Static<typeof ApprovalRuleSchema>;

export interface ApproverPolicy {
  readonly identity: Identity;
  /** Where the approver's public keys are: a JWKS file, or a JWKS written in the policy. */
  readonly keys: { readonly kind: 'file'; readonly path: string } | { readonly kind: 'inline'; readonly jwks: unknown };
  readonly groups: readonly string[];
}

export interface GroupRequirement {
  readonly group: string;
  readonly atLeast: number;
  /** The group's members, from the registry. */
  readonly members: ReadonlySet<Identity>;
}

/** How many approvals a change needs, and from which groups. */
export interface QuorumRule {
  readonly required: number;
  readonly groups: readonly GroupRequirement[];
}

export interface ApprovalRule extends QuorumRule {
  /** Namespace names and prefixes (ending in *) it applies to; undefined: every namespace. */
  readonly namespaces?: readonly string[];
}

function approverPolicy(entry: ApproverDocument, index: number, baseDir: string, problems: string[]): ApproverPolicy | undefined {
  const at = `approvers[${index}]`;
  const identity = normalizeIdentity(entry.identity);
  if (identity === undefined) problems.push(`${at}.identity: ${JSON.stringify(entry.identity)} is not a valid identity`);
  if ((entry.jwksFile === undefined) === (entry.jwks === undefined)) problems.push(`${at}: set exactly one of jwksFile and jwks`);
  if (identity === undefined) return undefined;
  const keys: ApproverPolicy['keys'] =
    entry.jwksFile !== undefined ? { kind: 'file', path: resolve(baseDir, entry.jwksFile) } : { kind: 'inline', jwks: entry.jwks };
  return { identity, keys, groups: entry.groups ?? [] };
}

/** The approvers registry from the policy document. */
export function approversPolicy(entries: readonly ApproverDocument[] | undefined, baseDir: string, problems: string[]): ApproverPolicy[] {
  const approvers: ApproverPolicy[] = [];
  (entries ?? []).forEach((entry, index) => {
    const approver = approverPolicy(entry, index, baseDir, problems);
    if (approver === undefined) return;
    if (approvers.some((a) => a.identity === approver.identity)) {
      problems.push(`approvers[${index}].identity: ${JSON.stringify(approver.identity)} is listed twice`);
    }
    approvers.push(approver);
  });
  return approvers;
}

/** The quorum rules, each checked against the registry: a rule that can never be met is refused. */
export function approvalRules(
  documents: readonly ApprovalRuleDocument[] | undefined,
  approvers: readonly ApproverPolicy[] | undefined,
  defaultRequired: number,
  problems: string[],
): ApprovalRule[] {
  const members = new Map<string, Set<Identity>>();
  for (const approver of approvers ?? []) {
    for (const group of approver.groups) members.set(group, (members.get(group) ?? new Set()).add(approver.identity));
  }
  return (documents ?? []).map((document, index) => {
    const at = `approvals.rules[${index}]`;
    const required = document.required ?? defaultRequired;
    const groups = (document.groups ?? []).map(({ group, atLeast }, g): GroupRequirement => {
      const where = `${at}.groups[${g}]`;
      const known = members.get(group);
      if (approvers === undefined)
        problems.push(
          `${where}: group ${JSON.stringify(group)} needs an approvers registry (top-level approvers), where groups are defined`,
        );
      else if (known === undefined) problems.push(`${where}: group ${JSON.stringify(group)} has no member in approvers`);
      else if (known.size < atLeast) {
        problems.push(
          `${where}: group ${JSON.stringify(group)} has ${known.size} member${known.size === 1 ? '' : 's'} in approvers, fewer than atLeast ${atLeast}: the rule could never be met`,
        );
      }
      if (atLeast > required)
        problems.push(`${where}: atLeast ${atLeast} is more than the ${required} approvals required: the rule could never be met`);
      return { group, atLeast, members: known ?? new Set() };
    });
    if (groups.some((g, i) => groups.findIndex((o) => o.group === g.group) !== i)) problems.push(`${at}.groups: a group is listed twice`);
    if (document.namespaces === undefined && index < (documents?.length ?? 0) - 1) {
      problems.push(`${at}: a rule without namespaces applies everywhere, so the rules after it would never apply; put it last`);
    }
    for (const pattern of document.namespaces ?? []) {
      if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?\*?$|^[a-z0-9-]*\*$/.test(pattern)) {
        problems.push(`${at}.namespaces: ${JSON.stringify(pattern)} is neither a namespace name nor a prefix ending in *`);
      }
    }
    return { required, groups, ...(document.namespaces ? { namespaces: document.namespaces } : {}) };
  });
}

function selects(pattern: string, namespace: string): boolean {
  return pattern.endsWith('*') ? namespace.startsWith(pattern.slice(0, -1)) : namespace === pattern;
}

/**
 * The rule for a change in `namespace` (a Namespace's own name for a Namespace): the first rule
 * whose namespaces select it, else `approvals.required` without groups.
 */
export function quorumRuleFor(rules: readonly ApprovalRule[], defaultRequired: number, namespace: string): QuorumRule {
  return (
    rules.find((r) => r.namespaces === undefined || r.namespaces.some((p) => selects(p, namespace))) ?? {
      required: defaultRequired,
      groups: [],
    }
  );
}
