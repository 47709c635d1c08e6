/**
 * What the object under review proves about plans. A plan approval signs a plan's digest, not an
 * object; it counts for an aspect of a request only when the object carries, in the annotation of
 * that plan, a proof that the entry the aspect binds (action, resource, namespace, name, digest) is
 * a leaf of that plan's tree of as many entries as the approval says. A proof annotation is read
 * only when a token read names its plan, at most once per review (strict I-JSON, bounded in size,
 * proofs and path length), and each plan is verified at most once per aspect.
 */
import type { Binding } from '../change/claims.ts';
import {
  MAX_PROOF_ANNOTATION_BYTES,
  type PlanProofs,
  type ProofsRead,
  proofAnnotationKey,
  provesEntry,
  readProofs,
} from '../plan/entries.ts';
import { quote } from '../text.ts';
import { decodeIJson, IJsonError } from '../token/ijson.ts';

/** Whether the object proves the aspect's entry to be in a plan, or why it does not. */
export type PlanCheck = { readonly ok: true } | { readonly ok: false; readonly code: 'proof' | 'binding'; readonly detail: string };

/** The plans an aspect's entry is proven to be in, asked by plan digest and size. */
export interface PlanEvidence {
  check(plan: string, entries: number): PlanCheck;
}

const short = (plan: string) => quote(plan, 20);

/**
 * Checks of recent proofs, by the entry, the plan and size asked and the annotation's exact text:
 * the check is a pure function of these, and re-sent reviews of one object (retries, dry runs,
 * replicas of the webhook's callers) are the common case. Bounded by entries; each key is at most
 * a proof annotation's size and an entry.
 */
const memo = new Map<string, PlanCheck>();
const MEMO_ENTRIES = 1024;

function remembered(key: string, check: () => PlanCheck): PlanCheck {
  const known = memo.get(key);
  if (known) return known;
  const result = check();
  memo.set(key, result);
  for (const [oldest] of memo) {
    if (memo.size <= MEMO_ENTRIES) break;
    memo.delete(oldest);
  }
  return result;
}

/** The proof annotations of one object, each read when first asked for. */
export class ObjectProofs {
  readonly #annotations: Readonly<Record<string, string>>;
  readonly #read = new Map<string, ProofsRead>();

  constructor(annotations: Readonly<Record<string, string>>) {
    this.#annotations = annotations;
  }

  #proofs(key: string): ProofsRead | undefined {
    const known = this.#read.get(key);
    if (known) return known;
    if (!Object.hasOwn(this.#annotations, key)) return undefined;
    const value = this.#annotations[key] as string;
    let read: ProofsRead;
    if (value.length > MAX_PROOF_ANNOTATION_BYTES || Buffer.byteLength(value, 'utf8') > MAX_PROOF_ANNOTATION_BYTES) {
      read = { ok: false, reason: `is larger than ${MAX_PROOF_ANNOTATION_BYTES} bytes` };
    } else {
      try {
        read = readProofs(decodeIJson(Buffer.from(value, 'utf8')));
      } catch (error) {
        read = { ok: false, reason: error instanceof IJsonError ? `is not I-JSON (${error.message})` : 'cannot be read' };
      }
    }
    this.#read.set(key, read);
    return read;
  }

  /** The evidence for one aspect's entry; each plan is verified once however many tokens name it. */
  evidenceFor(entry: Binding): PlanEvidence {
    const checked = new Map<string, PlanCheck>();
    return {
      check: (plan, entries) => {
        const memo = `${plan} ${entries}`;
        const known = checked.get(memo);
        if (known) return known;
        const key = proofAnnotationKey(plan);
        const value = Object.hasOwn(this.#annotations, key) ? this.#annotations[key] : undefined;
        const result =
          value === undefined || value.length > MAX_PROOF_ANNOTATION_BYTES
            ? this.#check(entry, plan, entries)
            : remembered(
                JSON.stringify([entry.action, entry.resource, entry.namespace, entry.name, entry.digest, plan, entries, value]),
                () => this.#check(entry, plan, entries),
              );
        checked.set(memo, result);
        return result;
      },
    };
  }

  #check(entry: Binding, plan: string, entries: number): PlanCheck {
    const key = proofAnnotationKey(plan);
    const read = this.#proofs(key);
    if (read === undefined) {
      return {
        ok: false,
        code: 'binding',
        detail: `approves plan ${short(plan)}, and this object carries no proof of being in it (${key})`,
      };
    }
    if (!read.ok) return { ok: false, code: 'proof', detail: `approves plan ${short(plan)}, whose proof annotation ${key} ${read.reason}` };
    const proofs: PlanProofs = read.proofs;
    if (proofs.plan !== plan) {
      return { ok: false, code: 'proof', detail: `approves plan ${short(plan)}, and ${key} holds the proof of plan ${short(proofs.plan)}` };
    }
    if (proofs.size !== entries) {
      return {
        ok: false,
        code: 'proof',
        detail: `approves plan ${short(plan)} of ${entries} entries, and ${key} proves entries of a plan of ${proofs.size}`,
      };
    }
    if (!provesEntry(entry, proofs)) {
      return {
        ok: false,
        code: 'binding',
        detail: `approves plan ${short(plan)}, whose proof on this object does not prove this ${entry.action}: the object is not the one planned (changed since), or the proof is another object's`,
      };
    }
    return { ok: true };
  }
}
