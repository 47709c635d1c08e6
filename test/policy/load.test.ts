import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/policy/duration.ts';
import { parsePolicy } from '../../src/policy/load.ts';

const minimal = 'cluster: prod-eu-1\nissuers:\n  - issuer: https://change.example.com\n    jwksFile: jwks.json\n';
const problems = (yaml: string) => {
  try {
    parsePolicy(yaml, '/etc/twokey', 'policy.yaml');
    return '';
  } catch (error) {
    return (error as Error).message;
  }
};

describe('policy file', () => {
  it('applies the documented defaults', () => {
    const policy = parsePolicy(minimal, '/etc/twokey');
    expect(policy).toMatchObject({
      cluster: 'prod-eu-1',
      required: 2,
      maxTtlSeconds: 86400,
      clockSkewSeconds: 60,
      maxApprovalAnnotations: 50,
    });
    expect([...policy.algorithms]).toEqual(['EdDSA', 'ES256']);
    expect([...policy.exemptDeleters.namespaceController]).toEqual(['system:serviceaccount:kube-system:namespace-controller']);
    expect([...policy.exemptDeleters.garbageCollector]).toEqual(['system:serviceaccount:kube-system:generic-garbage-collector']);
    expect(policy.issuers[0]?.jwks).toEqual({ kind: 'file', path: '/etc/twokey/jwks.json' });
  });

  it('reads every documented key', () => {
    const policy = parsePolicy(
      `${minimal}approvals: {required: 3, maxTtl: 2h, clockSkew: 30s, algorithms: [ES256]}\ncritical: {namespaces: [payments, checkout]}\nexemptDeleters: {namespaceController: [system:kube-controller-manager], garbageCollector: []}\n`,
      '/etc',
    );
    expect(policy).toMatchObject({ required: 3, maxTtlSeconds: 7200, clockSkewSeconds: 30 });
    expect([...policy.criticalNamespaces]).toEqual(['payments', 'checkout']);
    expect([...policy.algorithms]).toEqual(['ES256']);
    expect([...policy.exemptDeleters.namespaceController]).toEqual(['system:kube-controller-manager']);
    expect(policy.exemptDeleters.garbageCollector.size).toBe(0);
  });

  it.each([
    ['required below 2', `${minimal}approvals: {required: 1}`, 'approvals.required: must be >= 2'],
    ['alg none', `${minimal}approvals: {algorithms: [none]}`, 'approvals.algorithms[0]: must be one of EdDSA'],
    ['HMAC', `${minimal}approvals: {algorithms: [HS256]}`, 'approvals.algorithms[0]: must be one of'],
    ['a misspelt key', `${minimal}aprovals: {required: 2}`, 'aprovals: unknown field'],
    ['a misspelt nested key', `${minimal}approvals: {requried: 2}`, 'approvals.requried: unknown field'],
    ['a bad duration', `${minimal}approvals: {maxTtl: 1 day}`, 'approvals.maxTtl: must be a duration'],
    ['a TTL of a month', `${minimal}approvals: {maxTtl: 720h}`, 'approvals.maxTtl: must be at most 168h'],
    ['no cluster', 'issuers: [{issuer: a, jwksFile: j}]', 'cluster'],
    ['no issuers', 'cluster: x\nissuers: []', 'issuers: must not have fewer than 1 items'],
    [
      'both key sources',
      'cluster: x\nissuers: [{issuer: a, jwksFile: j, jwksUrl: "https://x/j"}]',
      'issuers[0]: set exactly one of jwksFile and jwksUrl',
    ],
    [
      'a plain-http JWKS URL',
      'cluster: x\nissuers: [{issuer: a, jwksUrl: "http://keys.example.com/j"}]',
      'issuers[0].jwksUrl: must be https',
    ],
    [
      'an issuer listed twice',
      'cluster: x\nissuers: [{issuer: a, jwksFile: j}, {issuer: a, jwksFile: k}]',
      'issuers[1].issuer: "a" is listed twice',
    ],
    ['a duplicate YAML key', 'cluster: x\ncluster: y\n', 'not valid YAML'],
    ['not a map', '- a\n- b\n', 'not a valid twokey policy'],
    [
      'an exempt deleter that is not an identity',
      `${minimal}exemptDeleters: {garbageCollector: ["a b"]}`,
      'exemptDeleters.garbageCollector[0]: "a b" is not a valid user name',
    ],
    [
      'exempt deleters as a list, which cannot say which role a name plays',
      `${minimal}exemptDeleters: [system:serviceaccount:kube-system:namespace-controller]`,
      'exemptDeleters: name each role: {namespaceController: [...], garbageCollector: [...]} (a list cannot say which role a name plays)',
    ],
    [
      'a name listed for both roles',
      `${minimal}exemptDeleters: {namespaceController: [system:kube-controller-manager], garbageCollector: [system:kube-controller-manager]}`,
      'exemptDeleters: "system:kube-controller-manager" is listed for both roles',
    ],
    ['an unknown role', `${minimal}exemptDeleters: {namespaceControler: [x]}`, 'exemptDeleters.namespaceControler: unknown field'],
  ])('refuses %s, naming the field', (_name, yaml, expected) => {
    const message = problems(yaml);
    expect(message).toContain('policy.yaml');
    expect(message).toContain(expected);
  });

  it('allows http JWKS URLs on loopback only', () => {
    expect(problems('cluster: x\nissuers: [{issuer: a, jwksUrl: "http://127.0.0.1:8080/j"}]')).toBe('');
  });
});

describe('durations', () => {
  it.each([
    ['90s', 90],
    ['15m', 900],
    ['24h', 86400],
    ['1h30m', 5400],
    ['1x', undefined],
    ['', undefined],
    ['-5s', undefined],
  ])('%s → %s', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });
});

describe('the policy file: warn mode and break-glass', () => {
  it('reads break-glass with its defaults, and refuses what would weaken it', () => {
    const breakGlass = 'breakGlass:\n  issuer: https://break-glass.example.com\n  jwksFile: break-glass.json\n';
    expect(parsePolicy(`${minimal}${breakGlass}`, '/etc/twokey').breakGlass).toEqual({
      issuer: 'https://break-glass.example.com',
      jwks: { kind: 'file', path: '/etc/twokey/break-glass.json' },
      refreshSeconds: 300,
      maxTtlSeconds: 3600,
      reviewWindowSeconds: 86400,
    });
    expect(problems(`${minimal}${breakGlass}  maxTtl: 5h\n`)).toMatch(/breakGlass.maxTtl: must be at most 4h/);
    expect(problems(`${minimal}${breakGlass}  reviewWindow: 1 day\n`)).toMatch(/breakGlass.reviewWindow: must be a duration/);
    expect(problems(`${minimal}breakGlass:\n  issuer: https://change.example.com\n  jwksFile: other.json\n`)).toMatch(
      /breakGlass.issuer: "https:\/\/change.example.com" is also an ordinary issuer/,
    );
    expect(problems(`${minimal}breakGlass:\n  issuer: https://bg\n`)).toMatch(/breakGlass: set exactly one of jwksFile and jwksUrl/);
    expect(problems(`${minimal}breakGlass:\n  issuer: https://bg\n  jwksFile: jwks.json\n`)).toMatch(
      /its JWKS is the one of ordinary issuer/,
    );
  });
});
