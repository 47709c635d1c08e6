/**
 * Attaching approvals to rendered manifests: plan approvals to every object of the plan with the
 * proof of its entries, single-object approvals to their object, nothing else touched, and every
 * disagreement an error that names it, with nothing written.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { AttachError, attachApprovals } from '../../src/manifests/attach.ts';
import { planDocument } from '../../src/plan/document.ts';
import { decodeProofs, type PlanEntry, proofAnnotationKey, provesEntry } from '../../src/plan/entries.ts';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const token = (sub: string, twokey: Record<string, unknown>) =>
  `${b64({ alg: 'EdDSA', typ: 'twokey-approval+jwt', kid: 'k' })}.${b64({ iss: 'x', aud: 'c', sub, twokey: { change: 'CHG1', ...twokey } })}.c2ln`;
const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

const deploymentDoc = (name: string) => `# Source: shop/templates/${name}.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  namespace: payments
spec:
  replicas: 2 # scaled by the HPA
`;
const SERVICE = `# Source: shop/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: payments
spec:
  ports: [{port: 80}]
`;
const RENDERED = `${['api', 'worker', 'ledger'].map(deploymentDoc).join('---\n')}---\n${SERVICE}`;
const entry = (name: string, n: number): PlanEntry => ({
  action: 'deploy',
  resource: 'deployments.apps',
  namespace: 'payments',
  name,
  digest: digest(n),
});
const PLAN = planDocument([entry('api', 1), entry('worker', 2), entry('ledger', 3)], [], 'cluster');
const planToken = (sub: string) => token(sub, { v: 2, plan: PLAN.digest, entries: 3 });

const annotationsOf = (text: string) =>
  (
    parseAllDocuments(text) as unknown as Array<{
      toJS(): { kind: string; metadata: { name: string; annotations?: Record<string, string> } };
    }>
  ).map((d) => d.toJS());

describe('twokey attach', () => {
  it('gives every object of the plan the plan approvals and the proof of its entry, and leaves the rest as written', () => {
    const approvals = [
      { source: 'approvals/bob.jwt', token: `${planToken('bob@example.com')}\n` },
      { source: 'approvals/carol.jwt', token: planToken('carol@example.com') },
    ];
    const out = attachApprovals({ text: RENDERED, source: 'rendered.yaml', approvals, plan: PLAN });
    const docs = annotationsOf(out);
    for (const [i, name] of ['api', 'worker', 'ledger'].entries()) {
      const annotations = docs[i]?.metadata.annotations ?? {};
      expect(Object.keys(annotations).sort()).toEqual(
        ['approval.twokey.dev/bob-example.com', 'approval.twokey.dev/carol-example.com', proofAnnotationKey(PLAN.digest)].sort(),
      );
      expect(annotations['approval.twokey.dev/bob-example.com']).toBe(planToken('bob@example.com'));
      const decoded = decodeProofs(annotations[proofAnnotationKey(PLAN.digest)] as string);
      expect(decoded.ok && provesEntry(entry(name, i + 1), decoded.proofs)).toBe(true);
    }
    expect(docs[3]?.metadata.annotations).toBeUndefined();
    // Only annotation lines were added: taking them out gives the input back, byte for byte.
    const without = out
      .split('\n')
      .filter((line) => !/^ {2}annotations:$|^ {4}(approval|plan)\.twokey\.dev\//.test(line))
      .join('\n');
    expect(without).toBe(RENDERED);
  });

  it('gives an approval of one object to that object, keyed by approver and action', () => {
    const approvals = [
      {
        source: 'bob.jwt',
        token: token('bob', { action: 'deploy', resource: 'deployments.apps', namespace: 'payments', name: 'worker', digest: digest(9) }),
      },
    ];
    const docs = annotationsOf(attachApprovals({ text: RENDERED, source: 'r.yaml', approvals }));
    expect(docs[1]?.metadata.annotations).toEqual({ 'approval.twokey.dev/bob-deploy': approvals[0]?.token });
    expect(docs[0]?.metadata.annotations).toBeUndefined();
  });

  it('names every disagreement at once, and writes nothing', () => {
    const approvals = [
      {
        source: 'a.jwt',
        token: token('bob', { action: 'deploy', resource: 'deployments.apps', namespace: 'payments', name: 'gone', digest: digest(1) }),
      },
      { source: 'b.jwt', token: token('carol', { v: 2, plan: digest(7), entries: 3 }) },
      { source: 'c.jwt', token: 'not a token' },
    ];
    let error: unknown;
    try {
      attachApprovals({ text: `${RENDERED}---\n${deploymentDoc('api')}---\n- just a list\n`, source: 'r.yaml', approvals, plan: PLAN });
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(AttachError);
    expect((error as AttachError).problems).toEqual([
      'r.yaml, document 6 is not a Kubernetes object (it needs apiVersion, kind and metadata)',
      'deployments.apps payments/api is in r.yaml, document 1 and again in r.yaml, document 5',
      'a.jwt approves the deploy of deployments.apps payments/gone, which the manifests do not hold',
      `b.jwt approves plan ${digest(7)} of 3 entries, not the plan given (${PLAN.digest} of 3)`,
      'c.jwt is not a twokey approval (no compact JWS or JWS JSON whose payload has sub and a twokey claim)',
      `no approval given approves the plan ${PLAN.digest}`,
    ]);
  });

  it('refuses a plan approval without the plan, a plan the manifests do not hold, and objects without a namespace', () => {
    expect(() =>
      attachApprovals({ text: RENDERED, source: 'r.yaml', approvals: [{ source: 'bob.jwt', token: planToken('bob') }] }),
    ).toThrow(`bob.jwt approves plan ${PLAN.digest}: give the plan (--plan) so each object gets the proof of its entries`);
    const twoObjects = ['api', 'worker'].map(deploymentDoc).join('---\n');
    expect(() =>
      attachApprovals({ text: twoObjects, source: 'r.yaml', approvals: [{ source: 'bob.jwt', token: planToken('bob') }], plan: PLAN }),
    ).toThrow('the plan holds the deploy of deployments.apps payments/ledger, which the manifests do not hold');
    const noNamespace = deploymentDoc('api').replace('  namespace: payments\n', '');
    expect(() => attachApprovals({ text: noNamespace, source: 'r.yaml', approvals: [] })).toThrow(
      'r.yaml, document 1: Deployment api names no namespace; give one with -n',
    );
    expect(attachApprovals({ text: noNamespace, source: 'r.yaml', approvals: [], namespace: 'payments' })).toBe(noNamespace);
  });
});
