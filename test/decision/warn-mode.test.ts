/**
 * Warn mode: what enforce mode would refuse for want of approvals is admitted and reported as a
 * would-be refusal; what twokey cannot judge stays refused; and only the policy file sets it.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../src/decision/decide.ts';
import { enforcedVerdict, wouldRefuseReason } from '../../src/decision/verdict.ts';
import { wordVerdict } from '../../src/decision/wording.ts';
import type { JsonObject } from '../../src/json.ts';
import { parsePolicy } from '../../src/policy/load.ts';
import {
  approve,
  deployment,
  type Issuer,
  makeIssuer,
  makePolicy,
  makeSnapshot,
  namespaceObject,
  offlineContext,
  request,
  withAnnotations,
  withLabels,
} from '../support/world.ts';

let issuer: Issuer;
const api = deployment();

beforeAll(async () => {
  issuer = await makeIssuer();
});

async function judge(policyDocument: Record<string, unknown>, object: JsonObject = api, user = 'deployer@example.com', more = {}) {
  const snapshot = await makeSnapshot([issuer], makePolicy(policyDocument));
  return decide(request({ operation: 'CREATE', object, user }), offlineContext(snapshot, more));
}

describe('warn mode', () => {
  it('admits a deploy short of approvals, and says what enforce mode would refuse', async () => {
    const verdict = await judge({ mode: 'warn' });
    expect(verdict.allowed).toBe(true);
    expect(verdict.wouldRefuse).toBe('policy');
    expect(verdict.message).toBeUndefined();
    expect(verdict.warnings).toEqual([
      'twokey (warn mode): would refuse: deploy of deployments.apps payments/api: 0 of 2 required approvals',
    ]);
    expect(verdict.summary).toBe('admitted in warn mode: would refuse: deploy of deployments.apps payments/api: 0 of 2 required approvals');
    const enforced = wordVerdict(enforcedVerdict(verdict));
    expect(enforced.allowed).toBe(false);
    expect(verdict.auditAnnotations).toEqual({
      decision: 'admitted',
      mode: 'warn',
      'would-refuse': (enforced.message as string).replace(/^twokey: /, ''),
      action: 'deploy',
      digest: verdict.digest,
    });
    expect(verdict.auditAnnotations['would-refuse']).toMatch(
      /^deploy of deployments.apps payments\/api refused: 0 of 2 required approvals\. Needed:/,
    );
    expect(wouldRefuseReason(verdict)).toBe('no-approvals');
  });

  it('gives the same verdict as enforce mode when approvals admit the change', async () => {
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
      'approval.twokey.dev/carol': await approve(issuer, 'deploy', api, { approver: 'carol@example.com' }),
    });
    const warned = await judge({ mode: 'warn' }, object);
    const enforced = await judge({}, object);
    expect(warned).toEqual(enforced);
    expect(warned.wouldRefuse).toBeUndefined();
  });

  it('counts a lone approval as too few', async () => {
    const object = withAnnotations(api, {
      'approval.twokey.dev/bob': await approve(issuer, 'deploy', api, { approver: 'bob@example.com' }),
    });
    const verdict = await judge({ mode: 'warn' }, object);
    expect(verdict.allowed).toBe(true);
    expect(wouldRefuseReason(verdict)).toBe('too-few-approvals');
    expect(verdict.warnings[0]).toMatch(/^twokey \(warn mode\): would refuse: deploy .*: 1 of 2 required approvals/);
  });

  it('applies to the namespaces the policy lists, and to a Namespace of that name, only', async () => {
    const listed = { warnNamespaces: ['payments'] };
    expect((await judge(listed)).wouldRefuse).toBe('namespace');
    const elsewhere = withLabels(deployment({ namespace: 'checkout' }), { 'twokey.dev/critical': 'true' });
    expect((await judge(listed, elsewhere)).allowed).toBe(false);
    const snapshot = await makeSnapshot([issuer], makePolicy(listed));
    const deleteNamespace = await decide(
      request({ operation: 'DELETE', oldObject: namespaceObject('payments') }),
      offlineContext(snapshot),
    );
    expect(deleteNamespace).toMatchObject({ allowed: true, wouldRefuse: 'namespace', action: 'delete' });
  });

  it('is not set by a label or an annotation on the namespace or the object', async () => {
    const object = withAnnotations(withLabels(api, { 'twokey.dev/mode': 'warn' }), { 'twokey.dev/mode': 'warn' });
    const verdict = await judge({}, object, 'deployer@example.com', {
      namespaces: { criticality: () => 'critical', deletion: () => 'active' },
    });
    expect(verdict.allowed).toBe(false);
    expect(verdict.wouldRefuse).toBeUndefined();
  });

  it('never admits what twokey cannot judge', async () => {
    const invalidUser = await judge({ mode: 'warn' }, api, 'bob\u200b@example.com');
    expect(invalidUser.allowed).toBe(false);
    expect(invalidUser.grounds.kind).toBe('cannot-judge');
    const unknownNamespace = await judge({ mode: 'warn' }, deployment({ namespace: 'team-x' }), 'deployer@example.com', {
      namespaces: { criticality: () => 'unknown', deletion: () => 'unknown' },
    });
    expect(unknownNamespace.allowed).toBe(false);
    expect(unknownNamespace.message).toMatch(/cannot judge/);
  });

  it('is read from the policy file: enforce by default, warn or enforce, nothing else', () => {
    const minimal = 'cluster: c\nissuers:\n  - issuer: https://i\n    jwksFile: j.json\n';
    expect(parsePolicy(minimal, '/').mode).toBe('enforce');
    expect(parsePolicy(`${minimal}mode: warn\n`, '/').mode).toBe('warn');
    expect(() => parsePolicy(`${minimal}mode: audit\n`, '/')).toThrow(/mode: must be one of enforce, warn/);
    expect([...parsePolicy(`${minimal}warnNamespaces: [a, b]\n`, '/').warnNamespaces]).toEqual(['a', 'b']);
  });
});

describe('warn mode and identity rules', () => {
  const identities = { rules: [{ stripPrefix: 'oidc:' }] };

  it('admits and reports a user no rule maps, so that rolling out identity rules finds the names they miss', async () => {
    const enforced = await judge({ identities }, api, 'system:serviceaccount:ci:agent');
    expect(enforced.allowed).toBe(false);
    expect(enforced.message).toMatch(/system:serviceaccount:ci:agent/);
    const verdict = await judge({ identities, mode: 'warn' }, api, 'system:serviceaccount:ci:agent');
    expect(verdict.allowed).toBe(true);
    expect(verdict.wouldRefuse).toBe('policy');
    expect(verdict.warnings.join('\n')).toMatch(/^twokey \(warn mode\): would refuse: .*system:serviceaccount:ci:agent/);
    expect(verdict.auditAnnotations['would-refuse']).toBe(
      (wordVerdict(enforcedVerdict(verdict)).message as string).replace(/^twokey: /, ''),
    );
    expect(wouldRefuseReason(verdict)).toBe('unmapped-user');
  });

  it('still refuses a user rules map to two identities, or to none that is valid', async () => {
    const ambiguous = { rules: [{ stripPrefix: 'oidc:' }, { exact: { 'oidc:alice@example.com': 'bob@example.com' } }] };
    expect((await judge({ identities: ambiguous, mode: 'warn' }, api, 'oidc:alice@example.com')).allowed).toBe(false);
    expect((await judge({ identities, mode: 'warn' }, api, 'oidc:')).allowed).toBe(false);
  });
});
