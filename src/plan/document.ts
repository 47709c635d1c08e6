/**
 * The plan document: what `twokey plan -o json` writes, a change system stores on the ticket, and
 * `twokey approve --plan` and `twokey attach --plan` read. Its entries are what approvals bind (their
 * tree head is the plan's digest); its objects say, for people, what each object's change is.
 * Read as untrusted input: a document whose digest does not match its entries is refused, and so is
 * one whose entries are not what its objects show: an entry without its object, or with a digest
 * other than that of the object it carries after the apply, or a diff that is not of the objects it
 * carries. What it cannot show is that its `before` is what the cluster holds: whoever reviews a
 * plan trusts whoever made it for that (README, "Approving a change of many objects").
 */
import Type from 'typebox';
import { Compile } from 'typebox/compile';
import { actionDigest, deploySpec, describeChangeTarget, digestOf } from '../change/digest.ts';
import type { JsonObject } from '../json.ts';
import { qualifiedResource, readMeta, resourceForKind } from '../kubernetes/objects.ts';
import { objectDiff } from './diff.ts';
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
  /** For a gated object: the live object as the diff shows it (absent when it does not exist yet). */
  before: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** For a gated object: the object as the apply leaves it, which its deploy and unprotect digests are of. */
  after: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** For a gated object that exists: the live object's uid, which its delete and unprotect digests bind. */
  uid: Type.Optional(Type.String({ minLength: 1 })),
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
  checkObjects(document, source);
  return { ...document, entries: [...tree.entries] };
}

const targetKey = (o: { resource: string; namespace: string; name: string }) => JSON.stringify([o.resource, o.namespace, o.name]);

/** Why `object` (a plan's before or after) is not the object `entry` is about, if it is not. */
function otherObject(entry: PlanEntry, object: JsonObject, which: string): string | undefined {
  const meta = readMeta(object);
  const kind =
    typeof object.apiVersion === 'string' && typeof object.kind === 'string' ? resourceForKind(object.apiVersion, object.kind) : undefined;
  if (kind === undefined || qualifiedResource(kind) !== entry.resource) return `its ${which} is not one of ${entry.resource}`;
  if (meta.name !== entry.name) return `its ${which} is named ${JSON.stringify(meta.name)}`;
  if (meta.namespace !== '' && meta.namespace !== entry.namespace) return `its ${which} is in namespace ${JSON.stringify(meta.namespace)}`;
  return undefined;
}

/** The digest an entry must have, from what its object carries; why not, when it carries too little or another object. */
function digestShown(entry: PlanEntry, object: PlannedObject): { digest: string } | { missing: string } | { other: string } {
  const target = { resource: entry.resource, namespace: entry.namespace, name: entry.name };
  const after = object.after as JsonObject | undefined;
  for (const [which, shown] of [
    ['object after the apply', after],
    ['live object', object.before as JsonObject | undefined],
  ] as const) {
    const other = shown === undefined ? undefined : otherObject(entry, shown, which);
    if (other !== undefined) return { other };
  }
  // A deploy of a spec the live object already has changes nothing the webhook would gate.
  if (entry.action === 'deploy' && after && object.before) {
    const before = digestOf({ ...target, action: 'deploy', spec: deploySpec(object.before as JsonObject) });
    if (before === digestOf({ ...target, action: 'deploy', spec: deploySpec(after) }))
      return { other: 'its live object already has that spec' };
  }
  const digest = actionDigest(entry.action, target, { ...(after ? { after } : {}), ...(object.uid ? { uid: object.uid } : {}) });
  if (digest !== undefined) return { digest };
  const missing = {
    deploy: 'the object after the apply',
    unprotect: "the object after the apply and the live object's uid",
    delete: "the live object's uid",
  };
  return { missing: missing[entry.action] };
}

/**
 * Each entry is shown by an object of the plan that lists its action and carries what its digest is
 * of, each action an object lists has its entry, and each diff is that of the objects it is between.
 */
function checkObjects(document: PlanDocument, source: string): void {
  const problems: string[] = [];
  const objects = new Map<string, PlannedObject>();
  // Objects twokey does not gate only inform; an object with actions must be one of a kind.
  for (const object of document.objects.filter((o) => o.actions.length > 0)) {
    if (objects.has(targetKey(object))) problems.push(`${describeChangeTarget(object)} is listed twice`);
    objects.set(targetKey(object), object);
  }
  for (const entry of document.entries) {
    const what = `the ${entry.action} of ${describeChangeTarget(entry)}`;
    const object = objects.get(targetKey(entry));
    if (!object?.actions.includes(entry.action)) {
      problems.push(`${what} is an entry, but no object of the plan shows it`);
      continue;
    }
    let shown: { digest: string } | { missing: string } | { other: string };
    try {
      shown = digestShown(entry, object);
    } catch (error) {
      problems.push(`${what}: its object cannot be read (${error instanceof Error ? error.message : String(error)})`);
      continue;
    }
    if ('missing' in shown) {
      problems.push(
        `${what}: its object does not carry ${shown.missing}, so its digest cannot be checked (a plan made by an older twokey? make it again with twokey plan)`,
      );
    } else if ('other' in shown) problems.push(`${what}: ${shown.other}`);
    else if (shown.digest !== entry.digest) {
      problems.push(`${what}: its digest ${entry.digest} is not that of the object the plan shows after the apply (${shown.digest})`);
    }
  }
  const entries = new Set(document.entries.map((e) => `${e.action} ${targetKey(e)}`));
  for (const object of document.objects) {
    for (const action of object.actions) {
      if (!entries.has(`${action} ${targetKey(object)}`))
        problems.push(`${describeChangeTarget(object)} is shown as a ${action}, but the plan has no such entry`);
    }
    if (document.source === 'cluster' && object.after !== undefined && object.diff === undefined) {
      problems.push(`${describeChangeTarget(object)}: it carries no diff, though the plan was made against the cluster`);
    }
    if (object.diff !== undefined && object.after !== undefined) {
      const diff = objectDiff(describeChangeTarget(object), object.before as JsonObject | undefined, object.after as JsonObject);
      if (diff !== object.diff)
        problems.push(`${describeChangeTarget(object)}: its diff is not that of the objects the plan shows before and after the apply`);
    }
  }
  if (problems.length > 0) {
    const listed = problems.slice(0, 10).join('; ');
    throw new PlanError(
      `${source}: the plan's entries are not what its objects show, so approvals of it would approve what nobody was shown: ${listed}${problems.length > 10 ? `; and ${problems.length - 10} more` : ''}`,
    );
  }
}
