/**
 * Identities as clusters name them (README, "Identities"): rules that map the Kubernetes user
 * making a request onto the identity approvers are named by (`sub`), before the two are compared.
 * A user name that no rule maps when the policy asks for a mapping, or that rules map to different
 * identities, is not compared at all: the request is refused, never passed.
 */
import Type from 'typebox';
import { type Identity, normalizeIdentity } from '../identity.ts';

const UserName = Type.String({ minLength: 1, maxLength: 1024 });

const AwsAssumedRole = Type.Object(
  {
    sessionName: Type.Optional(
      Type.Union([Type.Literal('raw'), Type.Literal('eks')], {
        description: 'raw: the session name as STS has it ({{SessionNameRaw}}); eks: as {{SessionName}} writes it, "@" made "-"',
      }),
    ),
    accounts: Type.Optional(Type.Array(Type.String({ pattern: '^\\d{12}$' }), { minItems: 1, uniqueItems: true })),
    roles: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, uniqueItems: true })),
  },
  { additionalProperties: false },
);

export const IdentityRuleSchema = Type.Union([
  Type.Object({ stripPrefix: Type.String({ minLength: 1, maxLength: 253 }) }, { additionalProperties: false }),
  Type.Object({ suffix: Type.String({ minLength: 2, maxLength: 253 }) }, { additionalProperties: false }),
  Type.Object({ awsAssumedRole: AwsAssumedRole }, { additionalProperties: false }),
  Type.Object({ exact: Type.Record(UserName, UserName) }, { additionalProperties: false }),
]);

export const IdentitiesSchema = Type.Object(
  {
    unmapped: Type.Optional(Type.Union([Type.Literal('refuse'), Type.Literal('asIs')])),
    rules: Type.Array(IdentityRuleSchema, { minItems: 1, maxItems: 100 }),
  },
  { additionalProperties: false },
);

type RuleDocument = Type.Static<typeof IdentityRuleSchema>;
export type IdentitiesDocument = Type.Static<typeof IdentitiesSchema>;

/** One rule: the name it maps a user name to, or undefined when it does not apply. */
export interface IdentityRule {
  /** How the policy writes it, e.g. `stripPrefix "oidc:"`, for messages. */
  readonly label: string;
  map(username: string): string | undefined;
  /** For EKS's {{SessionName}}: "@" is written "-", so an approver matches when their name written so does. */
  readonly atAsDash?: boolean;
}

export interface IdentityPolicy {
  readonly rules: readonly IdentityRule[];
  readonly unmapped: 'refuse' | 'asIs';
}

/** The user making a request as compared with approvers, or why the user cannot be compared. */
export type MappedUser =
  | {
      readonly ok: true;
      readonly identity: Identity;
      /** The user name as Kubernetes gave it, when a rule mapped it to another identity. */
      readonly from?: string;
      /** The user name itself in the normal form, also never an approver of the request. */
      readonly alias?: Identity;
      readonly atAsDash?: boolean;
    }
  | { readonly ok: false; readonly problem: 'invalid' | 'unmapped' | 'ambiguous' | 'maps-to-invalid'; readonly detail: string };

const EMAIL = /^[^@:/\s]+@[^@:/\s]+$/;

// arn:PARTITION:sts::ACCOUNT:assumed-role/ROLE/SESSION (STS writes no role path in it).
const ASSUMED_ROLE = /^arn:aws(?:-[a-z]+)*:sts::(\d{12}):assumed-role\/([\w+=,.@-]{1,64})\/([\w+=,.@-]{2,64})$/;

function rule(document: RuleDocument): IdentityRule {
  if ('stripPrefix' in document) {
    const prefix = document.stripPrefix;
    return {
      label: `stripPrefix ${JSON.stringify(prefix)}`,
      map: (name) => (name.startsWith(prefix) ? name.slice(prefix.length) : undefined),
    };
  }
  if ('suffix' in document) {
    const suffix = document.suffix;
    return {
      label: `suffix ${JSON.stringify(suffix)}`,
      // Only names written as an email (GKE's users, Google service accounts), not an ARN or a prefixed name ending so.
      map: (name) => (name.endsWith(suffix) && EMAIL.test(name) ? name : undefined),
    };
  }
  if ('awsAssumedRole' in document) {
    const { sessionName = 'raw', accounts, roles } = document.awsAssumedRole;
    return {
      label: 'awsAssumedRole',
      atAsDash: sessionName === 'eks',
      map: (name) => {
        const match = ASSUMED_ROLE.exec(name);
        if (!match) return undefined;
        const [, account, role, session] = match as unknown as [string, string, string, string];
        if (accounts && !accounts.includes(account)) return undefined;
        if (roles && !roles.includes(role)) return undefined;
        return session;
      },
    };
  }
  const map = new Map(Object.entries(document.exact));
  return { label: 'exact', map: (name) => map.get(name) };
}

/** The identities policy from its document; problems (a rule that maps to no identity) are pushed to `problems`. */
export function identityPolicy(document: IdentitiesDocument | undefined, problems: string[]): IdentityPolicy | undefined {
  if (document === undefined) return undefined;
  document.rules.forEach((entry, index) => {
    const at = `identities.rules[${index}]`;
    if ('stripPrefix' in entry && entry.stripPrefix.trim() !== entry.stripPrefix) {
      problems.push(`${at}.stripPrefix: must not begin or end with whitespace`);
    }
    if ('suffix' in entry && !/^[@.][^\s@]+$/.test(entry.suffix)) {
      problems.push(
        `${at}.suffix: must start with "@" or "." and name a domain (e.g. "@example.com"), or it would match names of other domains`,
      );
    }
    if ('exact' in entry) {
      for (const [from, to] of Object.entries(entry.exact)) {
        if (from.trim() !== from || normalizeIdentity(from) === undefined) {
          problems.push(`${at}.exact: ${JSON.stringify(from)} is not a valid user name`);
        }
        if (normalizeIdentity(to) === undefined)
          problems.push(`${at}.exact[${JSON.stringify(from)}]: ${JSON.stringify(to)} is not a valid identity`);
      }
    }
  });
  // Without a rule that maps a name, comparing it as written could let a user approve their own change under another form of their name.
  return { rules: document.rules.map(rule), unmapped: document.unmapped ?? 'refuse' };
}

/** The user making a request as approvers are named, by the policy's identities rules (none: the name itself). */
export function mapUser(identities: IdentityPolicy | undefined, username: string): MappedUser {
  const own = normalizeIdentity(username);
  if (identities === undefined) {
    return own === undefined ? { ok: false, problem: 'invalid', detail: 'is not a valid identity' } : { ok: true, identity: own };
  }
  const matches: { rule: IdentityRule; identity: Identity | undefined; raw: string }[] = [];
  for (const candidate of identities.rules) {
    const raw = candidate.map(username);
    if (raw !== undefined) matches.push({ rule: candidate, identity: normalizeIdentity(raw), raw });
  }
  const [first] = matches;
  if (first === undefined) {
    if (identities.unmapped === 'refuse' || own === undefined) {
      return own === undefined
        ? { ok: false, problem: 'invalid', detail: 'is not a valid identity' }
        : { ok: false, problem: 'unmapped', detail: 'matches no identities rule, and identities.unmapped is refuse' };
    }
    return { ok: true, identity: own };
  }
  if (first.identity === undefined) {
    return {
      ok: false,
      problem: 'maps-to-invalid',
      detail: `is mapped by rule ${first.rule.label} to ${JSON.stringify(first.raw)}, which is not a valid identity`,
    };
  }
  const disagree = matches.find((m) => m.identity !== first.identity);
  if (disagree !== undefined) {
    return {
      ok: false,
      problem: 'ambiguous',
      detail: `is mapped to different identities: ${JSON.stringify(first.raw)} by rule ${first.rule.label}, ${JSON.stringify(disagree.raw)} by rule ${disagree.rule.label}`,
    };
  }
  const atAsDash = matches.some((m) => m.rule.atAsDash);
  return {
    ok: true,
    identity: first.identity,
    ...(first.identity !== own ? { from: username } : {}),
    ...(own !== undefined && own !== first.identity ? { alias: own } : {}),
    ...(atAsDash ? { atAsDash } : {}),
  };
}

/** Whether an approver is the mapped user: their identity, the user name itself, or (EKS's {{SessionName}}) their name with "@" as "-". */
export function isUser(user: Extract<MappedUser, { ok: true }>, approver: Identity): boolean {
  if (approver === user.identity || approver === user.alias) return true;
  return user.atAsDash === true && approver.replaceAll('@', '-') === user.identity;
}
