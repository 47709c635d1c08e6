/**
 * Judging one review, apart from HTTP: the AdmissionReview as received in; the answer
 * kube-apiserver expects and the decision out. The review routes (reviews.ts) serve it. It never
 * throws, and never admits on error.
 */
import type { OffThreadDigester } from '../change/digest.ts';
import type { ConfigSnapshot } from '../config/store.ts';
import { cannotJudge, decide } from '../decision/decide.ts';
import type { NamespaceView } from '../decision/gate.ts';
import { type Decision, internalError } from '../decision/wording.ts';
import { describeError } from '../errors.ts';
import {
  type AdmissionRequest,
  type AdmissionReviewResponse,
  type AdmissionReviewWire,
  admissionReviewResponse,
  toAdmissionRequest,
} from '../kubernetes/admission.ts';

export interface ReviewContext {
  /** The policy and keys in force; undefined until they are loaded. */
  readonly snapshot: ConfigSnapshot | undefined;
  readonly namespaces: NamespaceView;
  /** Set on /validate/critical: the apiserver's namespaceSelector already found the namespace critical. */
  readonly forceCritical: boolean;
  /** Seconds since the epoch. */
  readonly now: number;
  /** Computes digests of large objects off the event loop. */
  readonly offThread?: OffThreadDigester;
}

export interface JudgedReview {
  readonly request: AdmissionRequest;
  readonly decision: Decision;
  readonly response: AdmissionReviewResponse;
}

export async function judgeReview(review: AdmissionReviewWire, ctx: ReviewContext): Promise<JudgedReview> {
  const request = toAdmissionRequest(review);
  let decision: Decision;
  if (ctx.snapshot === undefined) {
    decision = cannotJudge('the policy and keys are not loaded yet');
  } else {
    try {
      decision = await decide(request, {
        ...ctx.snapshot,
        namespaces: ctx.namespaces,
        forceCritical: ctx.forceCritical,
        now: ctx.now,
        ...(ctx.offThread ? { offThread: ctx.offThread } : {}),
      });
    } catch (error) {
      // decide() does not throw; this is the last line that keeps an error from admitting.
      decision = cannotJudge(internalError(describeError(error)));
    }
  }
  return { request, decision, response: admissionReviewResponse(request.uid, decision) };
}
