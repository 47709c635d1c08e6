/**
 * `twokey attach`: writes rendered manifests back with each gated object's approvals annotated,
 * every other byte as it was. Approvals of one object go to that object; approvals of a plan go to
 * every object the plan holds, with the proof of the object's own entries. Everything is checked
 * before anything is written: a manifest that is not a Kubernetes object, an object twice, an
 * approval for an object the manifests do not hold, or a plan the approvals do not approve is an
 * error that names it, and nothing is written.
 */
import { isJsonObject, type JsonObject } from '../json.ts';
import type { PlanDocument } from '../plan/document.ts';
import { encodeProofs, type PlanEntry, planTree, proofAnnotationKey } from '../plan/entries.ts';
import { addAnnotations } from './annotate.ts';
import { readStream, type StreamObject } from './stream.ts';

export class AttachError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.length === 1 ? (problems[0] as string) : `${problems.length} problems:\n  ${problems.join('\n  ')}`);
    this.name = 'AttachError';
    this.problems = problems;
  }
}

export interface ApprovalFile {
  /** Where the token was read from, for messages. */
  readonly source: string;
  readonly token: string;
}

export interface AttachInput {
  readonly text: string;
  readonly source: string;
  readonly approvals: readonly ApprovalFile[];
  readonly plan?: PlanDocument;
  /** The namespace of namespaced objects that name none, as `kubectl apply -n` gives it. */
  readonly namespace?: string;
}

/** What an approval says it approves, read without checking its signature (the webhook does that). */
type Approves =
  | { readonly kind: 'object'; readonly approver: string; readonly entry: PlanEntry }
  | { readonly kind: 'plan'; readonly approver: string; readonly plan: string; readonly entries: number };

const APPROVAL_PREFIX = 'approval.twokey.dev/';

/** The payload of a compact JWS, or of the JWS JSON serialization (several signatures over one payload). */
function payloadOf(token: string): JsonObject | undefined {
  const value = token.trim();
  let payload: string | undefined;
  if (value.startsWith('{')) {
    try {
      const document: unknown = JSON.parse(value);
      if (isJsonObject(document) && typeof document.payload === 'string') payload = document.payload;
    } catch {
      return undefined;
    }
  } else {
    const segments = value.split('.');
    if (segments.length === 3) payload = segments[1];
  }
  if (payload === undefined || !/^[A-Za-z0-9_-]+$/.test(payload)) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return isJsonObject(claims) ? claims : undefined;
  } catch {
    return undefined;
  }
}

function approves(file: ApprovalFile): Approves | string {
  const claims = payloadOf(file.token);
  const twokey = claims?.twokey;
  if (!claims || !isJsonObject(twokey) || typeof claims.sub !== 'string') {
    return `${file.source} is not a twokey approval (no compact JWS or JWS JSON whose payload has sub and a twokey claim)`;
  }
  const approver = claims.sub;
  if (typeof twokey.plan === 'string') {
    const entries = twokey.entries;
    if (typeof entries !== 'number') return `${file.source} approves plan ${twokey.plan} but says no number of entries`;
    return { kind: 'plan', approver, plan: twokey.plan, entries };
  }
  const { action, resource, namespace, name, digest } = twokey;
  if (
    (action !== 'deploy' && action !== 'delete' && action !== 'unprotect') ||
    typeof resource !== 'string' ||
    typeof namespace !== 'string' ||
    typeof name !== 'string' ||
    typeof digest !== 'string'
  ) {
    return `${file.source} names neither a plan nor one object's change`;
  }
  return { kind: 'object', approver, entry: { action, resource, namespace, name, digest } };
}

/** An annotation name part from an approver's identity: `bob@example.com` → `bob-example.com`. */
function keyFor(approver: string, suffix: string, taken: Set<string>): string {
  const base =
    approver
      .replace(/[^A-Za-z0-9_.-]+/g, '-')
      .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '')
      .slice(0, 50) || 'approver';
  const stem = suffix ? `${base}-${suffix}` : base;
  let key = `${APPROVAL_PREFIX}${stem}`;
  for (let n = 2; taken.has(key); n += 1) key = `${APPROVAL_PREFIX}${stem}-${n}`;
  taken.add(key);
  return key;
}

const describe = (o: { resource: string; namespace: string; name: string }) =>
  `${o.resource} ${o.namespace === '' ? '' : `${o.namespace}/`}${o.name}`;
const identity = (o: { resource: string; namespace: string; name: string }) => `${o.resource}\u0000${o.namespace}\u0000${o.name}`;

export function attachApprovals(input: AttachInput): string {
  const problems: string[] = [];
  const stream = readStream(input.text, input.source, input.namespace);
  problems.push(...stream.problems);
  const byIdentity = new Map<string, StreamObject>();
  for (const object of stream.objects) {
    if (!object.gated) continue;
    const key = identity(object);
    const first = byIdentity.get(key);
    if (first) problems.push(`${describe(object)} is in ${first.where} and again in ${object.where}`);
    else byIdentity.set(key, object);
  }

  const read = input.approvals.map((file) => ({ file, approves: approves(file) }));
  const plans = new Set<string>();
  const edits = new Map<number, Record<string, string>>();
  const taken = new Map<number, Set<string>>();
  const annotate = (object: StreamObject, key: (taken: Set<string>) => string, value: string) => {
    const keys = taken.get(object.document) ?? new Set<string>();
    taken.set(object.document, keys);
    edits.set(object.document, { ...edits.get(object.document), [key(keys)]: value });
  };

  for (const { file, approves: what } of read) {
    if (typeof what === 'string') {
      problems.push(what);
      continue;
    }
    if (what.kind === 'plan') {
      plans.add(what.plan);
      if (!input.plan)
        problems.push(`${file.source} approves plan ${what.plan}: give the plan (--plan) so each object gets the proof of its entries`);
      else if (input.plan.digest !== what.plan || input.plan.entries.length !== what.entries) {
        problems.push(
          `${file.source} approves plan ${what.plan} of ${what.entries} entries, not the plan given (${input.plan.digest} of ${input.plan.entries.length})`,
        );
      }
      continue;
    }
    const object = byIdentity.get(identity(what.entry));
    if (!object)
      problems.push(`${file.source} approves the ${what.entry.action} of ${describe(what.entry)}, which the manifests do not hold`);
    else annotate(object, (keys) => keyFor(what.approver, what.entry.action, keys), file.token.trim());
  }

  if (input.plan && plans.has(input.plan.digest)) {
    const tree = planTree(input.plan.entries);
    // Proofs are of the entries as given: they must be the entries the approvals approve.
    if (tree.digest !== input.plan.digest) {
      problems.push(
        `the plan's digest ${input.plan.digest} is not that of its entries (${tree.digest}): its entries changed after it was approved`,
      );
    }
    const byObject = new Map<string, number[]>();
    tree.entries.forEach((entry, index) => {
      byObject.set(identity(entry), [...(byObject.get(identity(entry)) ?? []), index]);
    });
    for (const [key, indexes] of byObject) {
      const object = byIdentity.get(key);
      const entry = tree.entries[indexes[0] as number] as PlanEntry;
      if (!object) {
        problems.push(`the plan holds the ${entry.action} of ${describe(entry)}, which the manifests do not hold`);
        continue;
      }
      const proofs = { plan: tree.digest, size: tree.entries.length, proofs: indexes.map((i) => tree.proof(i)) };
      annotate(object, () => proofAnnotationKey(tree.digest), encodeProofs(proofs));
      for (const { file, approves: what } of read) {
        if (typeof what === 'object' && what.kind === 'plan' && what.plan === tree.digest) {
          annotate(object, (keys) => keyFor(what.approver, '', keys), file.token.trim());
        }
      }
    }
  } else if (input.plan) {
    problems.push(`no approval given approves the plan ${input.plan.digest}`);
  }

  if (problems.length > 0) throw new AttachError(problems);
  return addAnnotations(input.text, edits);
}
