/**
 * The kube-apiserver stand-in must itself be faithful: it checks answers in the apiserver's order
 * and words outcomes as the apiserver and kubectl do (docs/kube-apiserver.md, "The response" and "Warnings").
 */
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { callWebhook, interpretResponse, keptWarnings, kubectlLines } from '../../src/kubernetes/webhook-client.ts';

const ok = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };

describe('response validation as kube-apiserver does it', () => {
  it.each([
    ['no response', { ...ok }, 'webhook response was absent'],
    ['a wrong uid', { ...ok, response: { uid: 'other', allowed: true } }, 'expected response.uid="u1", got "other"'],
    [
      'no apiVersion and kind',
      { response: { uid: 'u1', allowed: true } },
      'expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got /, Kind=',
    ],
    ['a patch', { ...ok, response: { uid: 'u1', allowed: true, patch: 'W10=' } }, 'validating webhook may not return response.patch'],
    [
      'a patchType',
      { ...ok, response: { uid: 'u1', allowed: true, patchType: 'JSONPatch' } },
      'validating webhook may not return response.patchType',
    ],
  ])('fails the call on %s', (_name, body, message) => {
    expect(interpretResponse('u1', 'w.twokey.dev', body)).toEqual({
      kind: 'failed',
      message: `failed calling webhook "w.twokey.dev": received invalid webhook response: ${message}`,
    });
  });

  it('words denials as the apiserver does, forcing codes below 400 to 400', () => {
    expect(interpretResponse('u1', 'w.twokey.dev', { ...ok, response: { uid: 'u1', allowed: false } })).toMatchObject({
      code: 400,
      message: 'admission webhook "w.twokey.dev" denied the request without explanation',
    });
    expect(
      interpretResponse('u1', 'w.twokey.dev', {
        ...ok,
        response: { uid: 'u1', allowed: false, status: { code: 403, reason: 'Forbidden', message: 'twokey: no' } },
      }),
    ).toEqual({
      kind: 'denied',
      code: 403,
      reason: 'Forbidden',
      message: 'admission webhook "w.twokey.dev" denied the request: twokey: no',
      warnings: [],
    });
  });

  it('drops warnings with control characters, empty ones and duplicates', () => {
    expect(keptWarnings(['a', '', 'b\nc', 'a', 'tab\there', 'ok'])).toEqual(['a', 'ok']);
  });

  it('prints as kubectl does', () => {
    const denied = interpretResponse('u1', 'w.twokey.dev', {
      ...ok,
      response: { uid: 'u1', allowed: false, warnings: ['careful'], status: { code: 403, reason: 'Forbidden', message: 'twokey: no' } },
    });
    expect(kubectlLines(denied, 'x created', { verb: 'creating', file: 'x.yaml' })).toEqual([
      'Warning: careful',
      'Error from server (Forbidden): error when creating "x.yaml": admission webhook "w.twokey.dev" denied the request: twokey: no',
    ]);
  });

  it('words a refused connection as kube-apiserver prints it', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    const outcome = await callWebhook(
      {
        url: `https://127.0.0.1:${port}/validate`,
        serverName: 'twokey.twokey.svc',
        caBundle: '',
        webhookName: 'workloads.twokey.dev',
        timeoutSeconds: 5,
      },
      { request: { uid: 'u' } },
    );
    expect(outcome).toEqual({
      kind: 'failed',
      message: `failed calling webhook "workloads.twokey.dev": failed to call webhook: Post "https://twokey.twokey.svc:${port}/validate?timeout=5s": dial tcp 127.0.0.1:${port}: connect: connection refused`,
    });
  });
});
