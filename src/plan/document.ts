/**
 * The plan document: what `twokey plan -o json` writes, a change system stores on the ticket, and
 * `twokey approve --plan` and `twokey attach --plan` read. Its entries are what approvals bind (their
 * tree head is the plan's digest); its objects say, for people, what each object's change is.
 * Read as untrusted input: a document whose digest does not match its entries is refused.
 */
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import { type PlanEntry, PlanError, planTree } from './entries.ts';

export const PLAN_API_VERSION = 'twokey.dev/v1';

const Entry = Type.Object(
  {
    action: Type.Union([Type.Literal('deploy'), Type.Literal('delete'), Type.Literal('unprotect')]),
    resource: Type.String({ minLength: 1 }),
    namespace: Type.String(),
    name: Type.String({ minLength: 1 }),
    digest: Type.String({ pattern: '^sha256:[0-9a-f]{64}$' }),
  },
  { additionalProperties: false },
);

const PlannedObject = Type.Object({
  resource: Type.String(),
  namespace: Type.String(),
  name: Type.String(),
  /** Whether applying it is gated, and as which actions. */
  actions: Type.Array(Type.String()),
  operation: Type.String(),
  /** Where it was read from, e.g. "rendered.yaml, document 3". */
  source: Type.String(),
  /** The live object against what the apply would make, as a unified diff; empty when nothing changes. */
  diff: Type.Optional(Type.String()),
  /** Why it is or is not gated, in words. */
  note: Type.Optional(Type.String()),
});

export const PlanDocumentSchema = Type.Object({
  apiVersion: Type.Literal(PLAN_API_VERSION),
  kind: Type.Literal('Plan'),
  /** The tree head of the entries: what a plan approval signs. */
  digest: Type.String({ pattern: '^sha256:[0-9a-f]{64}$' }),
  /** Whether the entries came from the cluster's own dry run (digests as the webhook computes them) or from the files as written. */
  source: Type.Union([Type.Literal('cluster'), Type.Literal('files')]),
  entries: Type.Array(Entry, { minItems: 1 }),
  objects: Type.Array(PlannedObject),
});

export type PlanDocument = Type.Static<typeof PlanDocumentSchema>;
export type PlannedObject = Type.Static<typeof PlannedObject>;

const validator = Compile(PlanDocumentSchema);

/** A plan document for these entries and objects; entries are put in the plan's order. */
export function planDocument(
  entries: readonly PlanEntry[],
  objects: readonly PlannedObject[],
  source: PlanDocument['source'],
): PlanDocument {
  const tree = planTree(entries);
  return { apiVersion: PLAN_API_VERSION, kind: 'Plan', digest: tree.digest, source, entries: [...tree.entries], objects: [...objects] };
}

/** Reads a plan document; throws PlanError naming what is wrong, including a digest its entries do not give. */
export function readPlanDocument(document: unknown, source: string): PlanDocument {
  if (!validator.Check(document)) {
    const [first] = validator.Errors(document);
    const at = first?.instancePath ? first.instancePath.replace(/^\//, '').replaceAll('/', '.') : '(top level)';
    throw new PlanError(`${source} is not a twokey plan: ${at} ${first?.message ?? 'is invalid'}`);
  }
  const tree = planTree(document.entries);
  if (tree.digest !== document.digest) {
    throw new PlanError(
      `${source}: its digest ${document.digest} is not the digest of its entries (${tree.digest}); it was changed after it was made`,
    );
  }
  return { ...document, entries: [...tree.entries] };
}
