/**
 * The policy file's schema. It is the single source for validation at load, for the types the
 * rest of the code uses, and for the JSON Schema published with the chart.
 */
import Type from 'typebox';
import { ApprovalRuleSchema, ApproverSchema } from './approvers.ts';
import { IdentitiesSchema } from './identities.ts';

export const SIGNING_ALGORITHMS = [
  'EdDSA',
  'Ed25519',
  'ES256',
  'ES384',
  'ES512',
  'PS256',
  'PS384',
  'PS512',
  'RS256',
  'RS384',
  'RS512',
] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

const Duration = Type.String({
  pattern: '^(?:\\d+h)?(?:\\d+m)?(?:\\d+s)?$',
  minLength: 2,
  description: 'a duration such as 90s, 15m, 24h or 1h30m',
});
const Name = Type.String({ minLength: 1, maxLength: 253 });

export const IssuerSchema = Type.Object(
  {
    issuer: Type.String({
      minLength: 1,
      description: 'the `iss` every approval from this change system carries',
    }),
    jwksFile: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'path to the issuer JWKS (relative paths are read from the policy file folder)',
      }),
    ),
    jwksUrl: Type.Optional(
      Type.String({
        pattern: '^https?://',
        description: 'https URL of the issuer JWKS (http only for loopback)',
      }),
    ),
    refreshInterval: Type.Optional(Duration),
  },
  { additionalProperties: false },
);

/** How refusals on critical scope are answered: refused (enforce), or admitted and reported (warn). */
export const MODES = ['enforce', 'warn'] as const;
export type Mode = (typeof MODES)[number];

/** The emergency issuer: one approver, for the objects its token names, loudly. Its keys are no ordinary issuer's. */
export const BreakGlassSchema = Type.Object(
  {
    issuer: Type.String({ minLength: 1, description: 'the `iss` of break-glass tokens; never an ordinary issuer' }),
    jwksFile: Type.Optional(Type.String({ minLength: 1, description: 'path to its JWKS (relative to the policy file folder)' })),
    jwksUrl: Type.Optional(Type.String({ pattern: '^https?://', description: 'https URL of its JWKS (http only for loopback)' })),
    refreshInterval: Type.Optional(Duration),
    maxTtl: Type.Optional(Duration),
    reviewWindow: Type.Optional(Duration),
  },
  { additionalProperties: false },
);

export const PolicySchema = Type.Object(
  {
    cluster: Type.String({
      minLength: 1,
      maxLength: 253,
      description: 'the audience every approval must name',
    }),
    issuers: Type.Array(IssuerSchema, { minItems: 1 }),
    approvals: Type.Optional(
      Type.Object(
        {
          required: Type.Optional(Type.Integer({ minimum: 2, maximum: 20 })),
          maxTtl: Type.Optional(Duration),
          clockSkew: Type.Optional(Duration),
          algorithms: Type.Optional(
            Type.Array(Type.Enum([...SIGNING_ALGORITHMS]), {
              minItems: 1,
              uniqueItems: true,
            }),
          ),
          countersign: Type.Optional(
            Type.Boolean({ description: 'count only approvals the approver countersigned with a key of the approvers registry' }),
          ),
          rules: Type.Optional(Type.Array(ApprovalRuleSchema, { minItems: 1, maxItems: 100 })),
        },
        { additionalProperties: false },
      ),
    ),
    critical: Type.Optional(
      Type.Object({ namespaces: Type.Optional(Type.Array(Name, { uniqueItems: true })) }, { additionalProperties: false }),
    ),
    exemptDeleters: Type.Optional(
      Type.Object(
        {
          namespaceController: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { uniqueItems: true })),
          garbageCollector: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { uniqueItems: true })),
        },
        { additionalProperties: false },
      ),
    ),
    identities: Type.Optional(IdentitiesSchema),
    approvers: Type.Optional(Type.Array(ApproverSchema, { minItems: 1, maxItems: 10000 })),
    mode: Type.Optional(Type.Enum([...MODES], { description: 'enforce (default) refuses; warn admits and reports what would be refused' })),
    warnNamespaces: Type.Optional(Type.Array(Name, { uniqueItems: true, description: 'namespaces in warn mode while mode is enforce' })),
    breakGlass: Type.Optional(BreakGlassSchema),
    limits: Type.Optional(
      Type.Object(
        {
          maxApprovalAnnotations: Type.Optional(Type.Integer({ minimum: 2, maximum: 1000 })),
          maxTokenBytes: Type.Optional(Type.Integer({ minimum: 256, maximum: 1048576 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export type PolicyDocument = Type.Static<typeof PolicySchema>;
