/**
 * The Events twokey records when an agent floods it: a break-glass admission's Event, and warn
 * mode's, are the loud trail, and refusals the agent provokes on purpose never crowd them out of the
 * bounded queue.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { EventRecorder } from '../../src/cluster/events.ts';
import type { KubeRest } from '../../src/cluster/rest.ts';
import { decide } from '../../src/decision/decide.ts';
import type { JsonObject } from '../../src/json.ts';
import { importJwks, KeyRing } from '../../src/keys/jwks.ts';
import type { AdmissionRequest } from '../../src/kubernetes/admission.ts';
import { createLogger } from '../../src/server/logger.ts';
import {
  BREAK_GLASS_ISSUER,
  BREAK_GLASS_POLICY,
  bindingFor,
  breakGlass,
  deployment,
  type Issuer,
  makeIssuer,
  makePolicy,
  offlineContext,
  request,
  withAnnotations,
} from '../support/world.ts';

let issuer: Issuer;
let glass: Issuer;
let keys: KeyRing;

beforeAll(async () => {
  issuer = await makeIssuer();
  glass = await makeIssuer(BREAK_GLASS_ISSUER, 'EdDSA', 'glass-1');
  keys = new KeyRing(await Promise.all([importJwks(issuer.issuer, issuer.jwks, 'test'), importJwks(glass.issuer, glass.jwks, 'test')]));
});

/** An API that holds every Event write until released, and keeps what was written. */
function stalledApi() {
  const created: JsonObject[] = [];
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  const rest = {
    call: async (_method: string, _path: string, options: { body?: unknown }) => {
      await released;
      created.push(options.body as JsonObject);
      return { status: 201, body: { metadata: { name: `e-${created.length}` } } };
    },
  } as unknown as KubeRest;
  return { rest, created, release };
}

async function judged(object: JsonObject, policy = makePolicy({ breakGlass: BREAK_GLASS_POLICY })) {
  const review: AdmissionRequest = request({ operation: 'CREATE', object, user: 'agent' });
  return { review, verdict: await decide(review, offlineContext({ policy, keys })) };
}

describe('a flood of refusals', () => {
  it('never crowds a break-glass admission out of the Event queue', async () => {
    const api = stalledApi();
    const recorder = new EventRecorder(api.rest, { logger: createLogger('silent'), queueLimit: 3, updateIntervalMs: 0 });
    for (let i = 0; i < 6; i++) {
      const { review, verdict } = await judged(deployment({ name: `noise-${i}` }));
      expect(verdict.allowed).toBe(false);
      recorder.record(review, verdict);
    }
    const fix = deployment({ name: 'fix' });
    const token = await breakGlass(glass, [bindingFor('deploy', fix)], { approver: 'dave@example.com' });
    const glassed = await judged(withAnnotations(fix, { 'twokey.dev/break-glass': token }));
    expect(glassed.verdict).toMatchObject({ allowed: true, breakGlass: { status: 'counted' } });
    recorder.record(glassed.review, glassed.verdict);
    api.release();
    await recorder.flush();
    expect(api.created.map((e) => e.reason)).toContain('BreakGlass');
    expect(api.created.length).toBeLessThanOrEqual(4);
  });

  it('never crowds a warn-mode admission out, and a break-glass one outranks both', async () => {
    const api = stalledApi();
    const recorder = new EventRecorder(api.rest, { logger: createLogger('silent'), queueLimit: 2, updateIntervalMs: 0 });
    const warn = makePolicy({ breakGlass: BREAK_GLASS_POLICY, warnNamespaces: ['search'] });
    for (let i = 0; i < 4; i++) {
      const { review, verdict } = await judged(deployment({ name: `noise-${i}` }));
      recorder.record(review, verdict);
    }
    for (let i = 0; i < 3; i++) {
      const object = deployment({ name: `warned-${i}`, namespace: 'search', labels: { 'twokey.dev/critical': 'true' } });
      const { review, verdict } = await judged(object, warn);
      expect(verdict.wouldRefuse).toBe('namespace');
      recorder.record(review, verdict);
    }
    const fix = deployment({ name: 'fix' });
    const token = await breakGlass(glass, [bindingFor('deploy', fix)], { approver: 'dave@example.com' });
    const glassed = await judged(withAnnotations(fix, { 'twokey.dev/break-glass': token }));
    recorder.record(glassed.review, glassed.verdict);
    api.release();
    await recorder.flush();
    const reasons = api.created.map((e) => e.reason);
    expect(reasons).toContain('BreakGlass');
    expect(reasons).toContain('WouldRefuse');
  });
});
