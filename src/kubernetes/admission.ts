/**
 * AdmissionReview v1 on the wire: the schema a review must meet, the model it is parsed into
 * once, and the response shape kube-apiserver accepts (uid echoed, exact apiVersion/kind, no patch).
 */
import Type from 'typebox';
import type { JsonObject } from '../json.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

const GroupVersionKind = Type.Object({
  group: Type.String(),
  version: Type.String(),
  kind: Type.String(),
});
const GroupVersionResource = Type.Object({
  group: Type.String(),
  version: Type.String(),
  resource: Type.String(),
});
const RawObject = Type.Union([Type.Object({}), Type.Null()]);

/** The longest request uid accepted (kube-apiserver sends a 36-character UUID). */
export const MAX_UID_LENGTH = 256;

export const AdmissionRequestSchema = Type.Object({
  // kube-apiserver's uid is a UUID; echoed in the answer, a long one would make every answer long.
  uid: Type.String({ minLength: 1, maxLength: MAX_UID_LENGTH }),
  kind: GroupVersionKind,
  resource: GroupVersionResource,
  subResource: Type.Optional(Type.String()),
  requestKind: Type.Optional(GroupVersionKind),
  requestResource: Type.Optional(GroupVersionResource),
  requestSubResource: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
  namespace: Type.Optional(Type.String()),
  operation: Type.Union([Type.Literal('CREATE'), Type.Literal('UPDATE'), Type.Literal('DELETE'), Type.Literal('CONNECT')]),
  userInfo: Type.Object({
    username: Type.Optional(Type.String()),
    uid: Type.Optional(Type.String()),
    groups: Type.Optional(Type.Array(Type.String())),
    extra: Type.Optional(Type.Record(Type.String(), Type.Array(Type.String()))),
  }),
  object: Type.Optional(RawObject),
  oldObject: Type.Optional(RawObject),
  dryRun: Type.Optional(Type.Boolean()),
  options: Type.Optional(RawObject),
});

export const AdmissionReviewSchema = Type.Object({
  apiVersion: Type.Literal(ADMISSION_API_VERSION),
  kind: Type.Literal('AdmissionReview'),
  request: AdmissionRequestSchema,
});

export type AdmissionReviewWire = Type.Static<typeof AdmissionReviewSchema>;
export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

/** What twokey judges: one admission request, parsed once from the wire. */
export interface AdmissionRequest {
  readonly uid: string;
  readonly operation: Operation;
  readonly resource: {
    readonly group: string;
    readonly version: string;
    readonly resource: string;
  };
  readonly subResource: string;
  readonly kind: {
    readonly group: string;
    readonly version: string;
    readonly kind: string;
  };
  readonly name: string;
  readonly namespace: string;
  readonly user: {
    readonly username: string;
    readonly groups: readonly string[];
  };
  readonly object: JsonObject | null;
  readonly oldObject: JsonObject | null;
  readonly dryRun: boolean;
}

export function toAdmissionRequest(review: AdmissionReviewWire): AdmissionRequest {
  const r = review.request;
  return {
    uid: r.uid,
    operation: r.operation,
    resource: r.resource,
    subResource: r.subResource ?? '',
    kind: r.kind,
    name: r.name ?? '',
    namespace: r.namespace ?? '',
    user: {
      username: r.userInfo.username ?? '',
      groups: r.userInfo.groups ?? [],
    },
    object: (r.object ?? null) as JsonObject | null,
    oldObject: (r.oldObject ?? null) as JsonObject | null,
    dryRun: r.dryRun ?? false,
  };
}

/**
 * The name of the object a request is about. A collection delete (the namespace controller empties
 * a namespace that way) sends one review per object with no request name: only the object names it.
 */
export function objectName(request: AdmissionRequest): string {
  if (request.name !== '') return request.name;
  const metadata = (request.object ?? request.oldObject)?.metadata;
  const name = typeof metadata === 'object' && metadata !== null ? (metadata as Record<string, unknown>).name : undefined;
  return typeof name === 'string' ? name : '';
}

/** The answer to a review. Validating webhooks never patch. */
export interface AdmissionAnswer {
  readonly allowed: boolean;
  /** Refusal text; required when not allowed. */
  readonly message?: string;
  readonly warnings?: readonly string[];
  readonly auditAnnotations?: Readonly<Record<string, string>>;
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    status?: { code: number; reason: string; message: string };
    warnings?: string[];
    auditAnnotations?: Record<string, string>;
  };
}

export function admissionReviewResponse(uid: string, answer: AdmissionAnswer): AdmissionReviewResponse {
  const response: AdmissionReviewResponse['response'] = {
    uid,
    allowed: answer.allowed,
  };
  if (!answer.allowed)
    response.status = {
      code: 403,
      reason: 'Forbidden',
      message: answer.message ?? 'twokey: refused',
    };
  if (answer.warnings && answer.warnings.length > 0) response.warnings = [...answer.warnings];
  if (answer.auditAnnotations && Object.keys(answer.auditAnnotations).length > 0) {
    response.auditAnnotations = { ...answer.auditAnnotations };
  }
  return {
    apiVersion: ADMISSION_API_VERSION,
    kind: 'AdmissionReview',
    response,
  };
}
