/**
 * What a person reads of an object's change: the object without server bookkeeping, and a unified
 * diff of the live object against what the apply would make. `twokey plan` writes both into the
 * plan document, and reading a plan checks that its diffs are those of the objects it carries.
 */
import { createTwoFilesPatch } from 'diff';
import { stringify } from 'yaml';
import { isJsonObject, type JsonObject } from '../json.ts';
import { PLAN_MARKER_ANNOTATION } from '../kubernetes/objects.ts';

/** What a person reads of an object: no server bookkeeping, no status, no plan marker. */
export function withoutNoise(object: JsonObject): JsonObject {
  const { status: _status, ...rest } = object;
  const metadata = isJsonObject(rest.metadata) ? { ...rest.metadata } : undefined;
  if (metadata) {
    for (const field of ['managedFields', 'resourceVersion', 'uid', 'generation', 'creationTimestamp']) delete metadata[field];
    if (isJsonObject(metadata.annotations)) {
      const { [PLAN_MARKER_ANNOTATION]: _marker, ...annotations } = metadata.annotations;
      if (Object.keys(annotations).length > 0) metadata.annotations = annotations;
      else delete metadata.annotations;
    }
    rest.metadata = metadata;
  }
  return rest;
}

/** A unified diff of the live object (absent: everything is added) against the object after the apply; "" when equal. */
export function objectDiff(label: string, live: JsonObject | undefined, after: JsonObject): string {
  const before = live ? stringify(withoutNoise(live), { lineWidth: 0 }) : '';
  const patch = createTwoFilesPatch(
    `live ${label}`,
    `after apply ${label}`,
    before,
    stringify(withoutNoise(after), { lineWidth: 0 }),
    '',
    '',
    {
      context: 3,
    },
  );
  const lines = patch.split('\n').filter((line) => !/^=+$/.test(line));
  return lines.some((line) => line.startsWith('@@')) ? visible(lines.join('\n')) : '';
}

/** Characters that show as nothing, as a space, or reorder what follows them (U+202E): shown as escapes instead. */
const INVISIBLE = /[\p{Cf}\p{Zl}\p{Zp}\u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]/gu;

/** The diff as a reviewer can read it: what a character hides is spelled out, e.g. \u202E. */
function visible(text: string): string {
  return text.replace(INVISIBLE, (c) => `\\u${(c.codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}`);
}
