/**
 * The Helm chart, rendered by the real helm binary over several value sets: lint, schema-valid
 * Kubernetes objects, the safety properties of the webhook configuration, a policy the server
 * loads, and plain manifests that match the chart.
 */
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isJsonObject, type JsonObject } from '../../src/json.ts';
import { parsePolicy } from '../../src/policy/load.ts';
import { DEFAULT_BODY_LIMIT } from '../../src/server/app.ts';
import { DEFAULT_CLIENT_LIMITS, MIB } from '../../src/server/limits.ts';
import { CHART, helm, MANIFESTS, parseObjects, render, renderManifests } from '../support/chart.ts';

const valueSets = ['defaults', ...readdirSync(join(CHART, 'ci')).filter((f) => f.endsWith('-values.yaml'))];
const renderSet = (set: string) => render(set === 'defaults' ? {} : { valuesFile: join(CHART, 'ci', set) });

const kindOf = (objects: JsonObject[], kind: string) => objects.filter((o) => o.kind === kind);
const one = (objects: JsonObject[], kind: string): JsonObject => {
  const found = kindOf(objects, kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0] as JsonObject;
};
/** The policy ConfigMap (the chart also renders the uninstall guard, a ConfigMap hook). */
const policyConfigMap = (objects: JsonObject[]): JsonObject => {
  const found = kindOf(objects, 'ConfigMap').filter((c) => String(at(c, 'metadata', 'name')).endsWith('-policy'));
  expect(found, 'exactly one policy ConfigMap').toHaveLength(1);
  return found[0] as JsonObject;
};
const at = (value: unknown, ...path: Array<string | number>): unknown =>
  path.reduce<unknown>((v, key) => (isJsonObject(v) || Array.isArray(v) ? (v as Record<string | number, unknown>)[key] : undefined), value);

/** Kubernetes OpenAPI validation of a rendered object, by apiVersion and kind. */
async function validateObject(object: JsonObject): Promise<void> {
  const [group, version] = String(object.apiVersion).includes('/') ? String(object.apiVersion).split('/') : ['', String(object.apiVersion)];
  const kind = String(object.kind);
  const packages: Record<string, string> = {
    'cert-manager.io': `@kubernetes-models/cert-manager/cert-manager.io/${version}/${kind}`,
    'monitoring.coreos.com': `@kubernetes-models/prometheus-operator/monitoring.coreos.com/${version}/${kind}`,
  };
  const module = packages[group as string] ?? `kubernetes-models/${group ? `${group}/` : ''}${version}/${kind}`;
  const loaded = (await import(module)) as Record<string, new (data: unknown) => { validate(): void }>;
  const Model = loaded[kind];
  if (!Model) throw new Error(`no model for ${object.apiVersion} ${kind}`);
  new Model(object).validate();
}

describe.each(valueSets)('the chart with %s', (set) => {
  const objects = renderSet(set);
  const vwc = one(objects, 'ValidatingWebhookConfiguration');
  const webhooks = at(vwc, 'webhooks') as JsonObject[];
  const deployment = one(objects, 'Deployment');
  const pod = at(deployment, 'spec', 'template', 'spec') as JsonObject;
  const container = (at(pod, 'containers') as JsonObject[])[0] as JsonObject;
  const release = 'twokey';

  it('passes helm lint', () => {
    expect(helm(['lint', CHART, ...(set === 'defaults' ? [] : ['--values', join(CHART, 'ci', set)])])).toContain('0 chart(s) failed');
  });

  it('renders objects valid against the Kubernetes (and cert-manager, prometheus-operator) schemas', async () => {
    expect(objects.length).toBeGreaterThan(10);
    for (const object of objects) await validateObject(object);
  });

  it('never sends twokey its own namespace or kube-system, whatever the values', () => {
    for (const webhook of webhooks) {
      const expressions = at(webhook, 'namespaceSelector', 'matchExpressions') as JsonObject[];
      const byName = expressions.find((e) => e.key === 'kubernetes.io/metadata.name') as JsonObject;
      const values = byName.values as string[];
      if (byName.operator === 'NotIn') expect(values).toEqual(expect.arrayContaining(['kube-system', release]));
      else {
        expect(byName.operator).toBe('In');
        expect(values).not.toContain('kube-system');
        expect(values).not.toContain(release);
      }
    }
  });

  it('fails closed, is safe for dry runs, answers within 5 seconds, speaks v1', () => {
    for (const webhook of webhooks) {
      expect(webhook.name).toMatch(/^[a-z-]+\.twokey\.dev$/);
      expect(webhook.failurePolicy).toBe('Fail');
      expect(['None', 'NoneOnDryRun']).toContain(webhook.sideEffects);
      expect(webhook.timeoutSeconds).toBeLessThanOrEqual(5);
      expect(webhook.admissionReviewVersions).toEqual(['v1']);
      expect(webhook.matchPolicy).toBe('Equivalent');
      expect(at(webhook, 'clientConfig', 'service', 'name')).toBe(at(one(objects, 'Service'), 'metadata', 'name'));
      expect(at(webhook, 'clientConfig', 'service', 'port')).toBe(443);
    }
  });

  it('routes each entry to the right path and selects namespaces as the chart README says', () => {
    const byName = Object.fromEntries(webhooks.map((w) => [w.name, w]));
    const path = (name: string) => at(byName[name], 'clientConfig', 'service', 'path');
    expect(path('workloads.twokey.dev')).toBe('/validate/critical');
    expect(at(byName['workloads.twokey.dev'], 'namespaceSelector', 'matchExpressions', 0)).toEqual({
      key: 'twokey.dev/critical',
      operator: 'In',
      values: ['true'],
    });
    expect(path('labeled-workloads.twokey.dev')).toBe('/validate');
    // Any value of the label is sent, so that a look-alike value ("True") is warned about.
    const anyValue = { matchExpressions: [{ key: 'twokey.dev/critical', operator: 'Exists' }] };
    expect(at(byName['labeled-workloads.twokey.dev'], 'objectSelector')).toEqual(anyValue);
    // The namespace entry must select by object (which also matches the old object), so removing the label is seen.
    expect(path('namespaces.twokey.dev')).toBe('/validate');
    expect(at(byName['namespaces.twokey.dev'], 'objectSelector')).toEqual(anyValue);
    expect(at(byName['namespaces.twokey.dev'], 'rules')).toEqual([
      {
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['namespaces', 'namespaces/status', 'namespaces/finalize'],
        operations: ['CREATE', 'UPDATE', 'DELETE'],
        scope: 'Cluster',
      },
    ]);
    const workloadRules = at(byName['workloads.twokey.dev'], 'rules') as JsonObject[];
    // status keeps label and owner changes (scale changes only replicas, and is not sent).
    expect(workloadRules.flatMap((r) => r.resources as string[]).sort()).toEqual([
      'cronjobs',
      'cronjobs/status',
      'daemonsets',
      'daemonsets/status',
      'deployments',
      'deployments/status',
      'statefulsets',
      'statefulsets/status',
    ]);
    for (const rule of workloadRules) expect(rule.operations).toEqual(['CREATE', 'UPDATE', 'DELETE']);
    // Of writes through a subresource only those changing the critical label or owners are sent.
    for (const webhook of webhooks) {
      const [condition, ...more] = webhook.matchConditions as JsonObject[];
      expect(more).toEqual([]);
      expect(condition?.expression).toMatch(/^request\.\?subResource\.orValue\(''\) == '' \|\|/);
      expect(condition?.expression).toContain("labels[?'twokey.dev/critical']");
      expect(condition?.expression).toContain('ownerReferences');
    }
    const listed = (at(policyConfigMap(objects), 'data', 'policy.yaml') as string).includes('namespaces: []') ? [] : ['listed'];
    expect(Boolean(byName['listed-namespaces.twokey.dev'])).toBe(listed.length > 0);
    if (byName['listed-namespaces.twokey.dev']) {
      expect(path('listed-namespaces.twokey.dev')).toBe('/validate/critical');
      // Updates too: one that gives the namespace an owner hands its deletion to the garbage collector.
      const namespaceRules = (at(byName['listed-namespaces.twokey.dev'], 'rules') as JsonObject[]).filter((r) =>
        (r.resources as string[]).includes('namespaces'),
      );
      expect(namespaceRules).toEqual([
        {
          apiGroups: [''],
          apiVersions: ['v1'],
          resources: ['namespaces', 'namespaces/status', 'namespaces/finalize'],
          operations: ['UPDATE', 'DELETE'],
          scope: 'Cluster',
        },
      ]);
    }
  });

  it('sets the CA bundle (or has cert-manager inject it) for the certificate the pods serve', () => {
    const mode = (at(vwc, 'metadata', 'annotations', 'cert-manager.io/inject-ca-from') as string | undefined) ? 'certManager' : 'bundle';
    if (mode === 'certManager') {
      const [namespace, name] = (at(vwc, 'metadata', 'annotations', 'cert-manager.io/inject-ca-from') as string).split('/');
      const certificate = kindOf(objects, 'Certificate').find((c) => at(c, 'metadata', 'name') === name);
      expect(namespace).toBe(release);
      expect(at(certificate, 'spec', 'dnsNames')).toContain(`${release}.${release}.svc`);
      const tlsVolume = (pod.volumes as JsonObject[]).find((v) => v.name === 'tls');
      expect(at(certificate, 'spec', 'secretName')).toBe(at(tlsVolume, 'secret', 'secretName'));
      for (const webhook of webhooks) expect(at(webhook, 'clientConfig', 'caBundle')).toBeUndefined();
      return;
    }
    const bundles = new Set(webhooks.map((w) => at(w, 'clientConfig', 'caBundle')));
    expect(bundles.size).toBe(1);
    const bundle = Buffer.from([...bundles][0] as string, 'base64').toString();
    expect(bundle).toContain('BEGIN CERTIFICATE');
    const secret = kindOf(objects, 'Secret').find((s) => s.type === 'kubernetes.io/tls');
    if (secret) {
      // The chart made the certificate: it must chain to the bundle and name the service.
      const ca = new X509Certificate(bundle);
      const cert = new X509Certificate(Buffer.from(at(secret, 'data', 'tls.crt') as string, 'base64'));
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.checkHost(`${release}.${release}.svc`)).toBe(`${release}.${release}.svc`);
      expect(Buffer.from(at(secret, 'data', 'ca.crt') as string, 'base64').toString()).toBe(bundle);
    }
  });

  it('leaves no webhook behind on uninstall: the configuration is an ordinary release object', () => {
    const annotations = (at(vwc, 'metadata', 'annotations') ?? {}) as Record<string, string>;
    expect(annotations['helm.sh/resource-policy']).toBeUndefined();
    expect(annotations['helm.sh/hook']).toBeUndefined();
  });

  it('runs hardened, spread, probed pods that drain on shutdown', () => {
    expect(at(pod, 'securityContext')).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    expect(at(container, 'readinessProbe', 'httpGet')).toMatchObject({ path: '/readyz', scheme: 'HTTPS' });
    expect(at(container, 'livenessProbe', 'httpGet')).toMatchObject({ path: '/healthz', scheme: 'HTTPS' });
    expect(at(container, 'resources', 'requests')).toBeDefined();
    expect(at(container, 'resources', 'limits')).toBeDefined();
    expect(container.args).toEqual(
      expect.arrayContaining(['serve', '--config=/etc/twokey/policy/policy.yaml', '--tls-cert=/etc/twokey/tls/tls.crt']),
    );
    expect((container.args as string[]).some((a) => /^--shutdown-delay=\d+s$/.test(a))).toBe(true);
    expect(pod.priorityClassName).toBeTruthy();
    for (const mount of container.volumeMounts as JsonObject[]) expect(mount.subPath).toBeUndefined();
    if (set === 'defaults') {
      expect(at(deployment, 'spec', 'replicas')).toBe(3);
      expect((pod.topologySpreadConstraints as JsonObject[]).map((c) => c.topologyKey)).toEqual([
        'kubernetes.io/hostname',
        'topology.kubernetes.io/zone',
      ]);
      expect(at(one(objects, 'PodDisruptionBudget'), 'spec', 'maxUnavailable')).toBe(1);
    }
  });

  it('admits traffic only to the webhook and metrics ports', () => {
    const policy = one(objects, 'NetworkPolicy');
    expect(at(policy, 'spec', 'policyTypes')).toEqual(['Ingress']);
    const ports = (at(policy, 'spec', 'ingress') as JsonObject[]).flatMap((rule) => (rule.ports as JsonObject[]).map((p) => p.port));
    expect(ports.sort()).toEqual([8443, 9090]);
  });

  it('grants the server only what it needs', () => {
    const role = kindOf(objects, 'ClusterRole').find((r) => at(r, 'metadata', 'name') === release);
    expect(at(role, 'rules')).toEqual([
      { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
  });

  it('renders a policy the server loads, with every issuer key file mounted', () => {
    const text = at(policyConfigMap(objects), 'data', 'policy.yaml') as string;
    const policy = parsePolicy(text, '/etc/twokey/policy', 'rendered policy');
    const mounted = new Set(
      (
        ((at(pod, 'volumes') as JsonObject[]).find((v) => v.name === 'issuers')?.projected as JsonObject | undefined)?.sources as
          | JsonObject[]
          | undefined
      )?.flatMap((source) => ((at(source, 'secret', 'items') as JsonObject[]) ?? []).map((item) => `/etc/twokey/issuers/${item.path}`)) ??
        [],
    );
    for (const issuer of [...policy.issuers, ...(policy.breakGlass ? [policy.breakGlass] : [])]) {
      if (issuer.jwks.kind === 'file') expect(mounted).toContain(issuer.jwks.path);
    }
    // Each cleanup identity keeps its role: they are exempt in different places.
    expect([...policy.exemptDeleters.namespaceController]).toEqual(['system:serviceaccount:kube-system:namespace-controller']);
    expect([...policy.exemptDeleters.garbageCollector]).toEqual(['system:serviceaccount:kube-system:generic-garbage-collector']);
  });

  it('guards twokey itself with a ValidatingAdmissionPolicy bound to its namespace', () => {
    const vap = one(objects, 'ValidatingAdmissionPolicy');
    const rules = at(vap, 'spec', 'matchConstraints', 'resourceRules') as JsonObject[];
    const ruleFor = (resource: string, operation: string) =>
      rules.find((r) => (r.resources as string[]).includes(resource) && (r.operations as string[]).includes(operation));
    const guarded = (resource: string) => ruleFor(resource, 'DELETE')?.resourceNames as string[] | undefined;
    expect(guarded('validatingwebhookconfigurations')).toEqual([at(vwc, 'metadata', 'name')]);
    expect(guarded('deployments')).toEqual([at(deployment, 'metadata', 'name')]);
    expect(guarded('deployments/scale')).toEqual([at(deployment, 'metadata', 'name')]);
    expect(guarded('deployments/status')).toEqual([at(deployment, 'metadata', 'name')]);
    expect(guarded('configmaps')).toEqual([at(policyConfigMap(objects), 'metadata', 'name')]);
    expect(guarded('namespaces')).toEqual([release]);
    const resources = {
      ClusterRole: 'clusterroles',
      ClusterRoleBinding: 'clusterrolebindings',
      PodDisruptionBudget: 'poddisruptionbudgets',
      PriorityClass: 'priorityclasses',
    };
    for (const [kind, resource] of Object.entries(resources)) {
      for (const object of kindOf(objects, kind)) expect(guarded(resource), kind).toContain(at(object, 'metadata', 'name'));
    }
    // Updates of the namespace too, also through status and finalize: an owner added to it would
    // have the garbage collector delete it.
    expect(ruleFor('namespaces', 'UPDATE')?.resources).toEqual(['namespaces', 'namespaces/status', 'namespaces/finalize']);
    expect(ruleFor('namespaces', 'UPDATE')?.operations).toEqual(['UPDATE', 'DELETE']);
    // Nothing that could run a stand-in server in twokey's namespace, or read its certificate.
    for (const resource of [
      'pods',
      'services',
      'endpoints',
      'replicationcontrollers',
      'deployments',
      'replicasets',
      'statefulsets',
      'daemonsets',
      'jobs',
      'cronjobs',
      'endpointslices',
    ])
      expect(ruleFor(resource, 'CREATE')?.resourceNames, resource).toBeUndefined();
    expect(ruleFor('pods/ephemeralcontainers', 'UPDATE')).toBeDefined();
    expect(ruleFor('pods/exec', 'CONNECT')).toBeDefined();
    const variables = Object.fromEntries((at(vap, 'spec', 'variables') as JsonObject[]).map((v) => [v.name, v.expression as string]));
    expect(variables.controllerWrite).toContain('\'pods\': ["system:serviceaccount:kube-system:replicaset-controller"');
    expect(variables.statusOnly).toContain("variables.subresource in ['status', 'finalize']");
    // A helm uninstall by anyone else fails at its first step, before it removes anything.
    const hook = kindOf(objects, 'ConfigMap').find((c) => at(c, 'metadata', 'annotations', 'helm.sh/hook') === 'pre-delete');
    expect(ruleFor('configmaps', 'CREATE')?.resourceNames).toEqual([at(hook, 'metadata', 'name')]);
    const cleanup = (at(vap, 'spec', 'variables') as JsonObject[]).find((v) => v.name === 'clusterCleanup');
    expect(cleanup?.expression).toContain(
      "request.operation == 'DELETE' || (oldObject != null && has(oldObject.metadata.deletionTimestamp))",
    );
    expect(cleanup?.expression).toContain(
      'request.userInfo.username in ["system:serviceaccount:kube-system:namespace-controller","system:serviceaccount:kube-system:generic-garbage-collector"]',
    );
    expect(at(one(objects, 'ValidatingAdmissionPolicyBinding'), 'spec')).toMatchObject({
      policyName: at(vap, 'metadata', 'name'),
      validationActions: ['Deny'],
      matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': release } } },
    });
  });

  it('ships a helm test that probes the webhook', () => {
    const test = kindOf(objects, 'Pod').find((p) => at(p, 'metadata', 'annotations', 'helm.sh/hook') === 'test');
    expect(at(test, 'spec', 'containers', 0, 'args')).toEqual([
      'probe',
      `--url=https://${release}.${release}.svc:443`,
      '--ca-file=/etc/twokey/tls/ca.crt',
    ]);
  });
});

describe('chart values', () => {
  it('points the webhook at a server outside the cluster with webhook.url, and names its host in the certificate', () => {
    const objects = render({ set: ['webhook.url=https://203.0.113.7:8443/'] });
    const vwc = one(objects, 'ValidatingWebhookConfiguration');
    const webhooks = at(vwc, 'webhooks') as JsonObject[];
    expect(webhooks.map((w) => at(w, 'clientConfig', 'url'))).toEqual([
      'https://203.0.113.7:8443/validate/critical',
      'https://203.0.113.7:8443/validate',
      'https://203.0.113.7:8443/validate',
    ]);
    for (const webhook of webhooks) expect(at(webhook, 'clientConfig', 'service')).toBeUndefined();
    const secret = kindOf(objects, 'Secret').find((s) => at(s, 'type') === 'kubernetes.io/tls');
    const certificate = new X509Certificate(Buffer.from(at(secret, 'data', 'tls.crt') as string, 'base64'));
    expect(certificate.subjectAltName).toContain('IP Address:203.0.113.7');
    const named = render({ set: ['webhook.url=https://twokey.example.com'] });
    const namedSecret = kindOf(named, 'Secret').find((s) => at(s, 'type') === 'kubernetes.io/tls');
    expect(new X509Certificate(Buffer.from(at(namedSecret, 'data', 'tls.crt') as string, 'base64')).subjectAltName).toContain(
      'DNS:twokey.example.com',
    );
    expect(() => render({ set: ['webhook.url=http://203.0.113.7:8443'] })).toThrow(/webhook\/url/);
  });

  it('keeps the generated certificate across upgrades only through the Secret (helm template makes a new one each time)', () => {
    const first = renderSet('defaults');
    const second = renderSet('defaults');
    const bundle = (objects: JsonObject[]) => at(one(objects, 'ValidatingWebhookConfiguration'), 'webhooks', 0, 'clientConfig', 'caBundle');
    expect(bundle(first)).not.toBe(bundle(second));
    const template = readFileSync(join(CHART, 'templates', 'webhook.yaml'), 'utf8');
    expect(template).toMatch(/lookup "v1" "Secret" \.Release\.Namespace \$secretName/);
  });

  it.each([
    ['an unknown value', ['frobnicate=true'], "additional properties 'frobnicate' not allowed"],
    ['one approval', ['policy.approvals.required=1'], 'minimum: got 1, want 2'],
    ['failing open by typo', ['webhook.failurePolicy=Ignor'], 'failurePolicy'],
    ['a 60s timeout', ['webhook.timeoutSeconds=60'], 'maximum'],
    ['HMAC approvals', ['policy.approvals.algorithms={HS256}'], 'algorithms'],
    [
      'an issuer with two key sources',
      [
        'issuers[0].issuer=https://x',
        'issuers[0].jwksUrl=https://x/j',
        'issuers[0].existingSecret.name=a',
        'issuers[0].existingSecret.key=b',
      ],
      'oneOf',
    ],
    ['secret TLS without a CA bundle', ['tls.mode=secret', 'tls.secret.name=x'], 'tls.secret.caBundle is required'],
    ['metrics on the webhook port', ['metrics.port=8443'], 'metrics.port'],
    ['a drain longer than the grace period', ['shutdownDelaySeconds=25'], 'terminationGracePeriodSeconds must be at least'],
    ['exempt deleters as one list, which cannot say which role a name plays', ['policy.exemptDeleters={a,b}'], 'exemptDeleters'],
    ['a body limit over what one address may hold', ['serverLimits.bodyLimitMiB=40'], 'serverLimits: '],
  ])('refuses %s', (_name, set, message) => {
    expect(() => render({ set })).toThrow(message);
  });

  it("passes the server's client limits, by default the server's own", () => {
    const args = at(one(render({}), 'Deployment'), 'spec', 'template', 'spec', 'containers', 0, 'args');
    expect(args).toEqual(
      expect.arrayContaining([
        `--max-connections=${DEFAULT_CLIENT_LIMITS.maxConnections}`,
        `--max-connections-per-peer=${DEFAULT_CLIENT_LIMITS.maxConnectionsPerPeer}`,
        `--body-limit-mib=${DEFAULT_BODY_LIMIT / MIB}`,
        `--body-memory-mib=${DEFAULT_CLIENT_LIMITS.bodyMemory / MIB}`,
        `--body-memory-per-peer-mib=${DEFAULT_CLIENT_LIMITS.bodyMemoryPerPeer / MIB}`,
      ]),
    );
  });

  it('keeps the helm test pod out of the Service, and lets it through a restricted webhook port', () => {
    const objects = render({ set: ['networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24'] });
    const selector = at(one(objects, 'Service'), 'spec', 'selector') as Record<string, string>;
    const testPod = kindOf(objects, 'Pod').find((p) => at(p, 'metadata', 'annotations', 'helm.sh/hook') === 'test');
    const labels = at(testPod, 'metadata', 'labels') as Record<string, string>;
    expect(Object.entries(selector).every(([k, v]) => labels[k] === v)).toBe(false);
    const from = at(one(objects, 'NetworkPolicy'), 'spec', 'ingress', 0, 'from') as JsonObject[];
    expect(from).toContainEqual({ ipBlock: { cidr: '10.0.0.0/24' } });
    const peer = from.find((f) => f.podSelector) as JsonObject;
    const wanted = at(peer, 'podSelector', 'matchLabels') as Record<string, string>;
    expect(Object.entries(wanted).every(([k, v]) => labels[k] === v)).toBe(true);
  });

  it('guards its NetworkPolicy, which could cut kube-apiserver off from the webhook', () => {
    const objects = render({});
    const policy = kindOf(objects, 'ValidatingAdmissionPolicy')[0];
    const rules = at(policy, 'spec', 'matchConstraints', 'resourceRules') as JsonObject[];
    expect(rules).toContainEqual(
      expect.objectContaining({ apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], operations: ['UPDATE', 'DELETE'] }),
    );
    // New ones too (any name), in twokey's namespace only: the binding selects it (checked above).
    expect(rules).toContainEqual({
      apiGroups: ['networking.k8s.io'],
      apiVersions: ['*'],
      resources: ['networkpolicies'],
      operations: ['CREATE'],
    });
  });

  it('excludes extra namespaces given in values, and refuses to list an excluded one as critical', () => {
    const objects = render({ set: ['webhook.excludeNamespaces={ops}', 'policy.critical.namespaces={payments}'] });
    const webhooks = at(one(objects, 'ValidatingWebhookConfiguration'), 'webhooks') as JsonObject[];
    const listed = webhooks.find((w) => w.name === 'listed-namespaces.twokey.dev');
    expect(at(listed, 'namespaceSelector', 'matchExpressions', 1, 'values')).toEqual(['payments']);
    const labelled = webhooks.find((w) => w.name === 'labeled-workloads.twokey.dev');
    expect(at(labelled, 'namespaceSelector', 'matchExpressions', 1, 'values')).toEqual(['kube-system', 'twokey', 'ops', 'payments']);
    // A namespace the webhook never sees, listed as critical, would look guarded and be judged by nobody.
    for (const ns of ['ops', 'kube-system', 'twokey']) {
      expect(() => render({ set: ['webhook.excludeNamespaces={ops}', `policy.critical.namespaces={payments,${ns}}`] })).toThrow(
        new RegExp(`policy.critical.namespaces lists ${ns}, which is never sent to twokey`),
      );
    }
  });
});

describe('plain manifests', () => {
  it('equal the chart rendered with its defaults (certificate from cert-manager)', () => {
    expect(readFileSync(MANIFESTS, 'utf8')).toBe(renderManifests());
  });

  it('carry no private key', () => {
    const objects = parseObjects(readFileSync(MANIFESTS, 'utf8'));
    expect(kindOf(objects, 'Secret')).toEqual([]);
    expect(readFileSync(MANIFESTS, 'utf8')).not.toContain('PRIVATE KEY');
  });
});

describe('warn mode and break-glass in the chart', () => {
  const policyOf = (objects: JsonObject[]) =>
    parsePolicy(at(policyConfigMap(objects), 'data', 'policy.yaml') as string, '/etc/twokey/policy');

  it('enforces by default, with no break-glass issuer', () => {
    const policy = policyOf(render());
    expect(policy.mode).toBe('enforce');
    expect(policy.warnNamespaces.size).toBe(0);
    expect(policy.breakGlass).toBeUndefined();
  });

  it('writes policy.mode and policy.warnNamespaces into the policy, and refuses another mode', () => {
    const policy = policyOf(render({ set: ['policy.mode=warn', 'policy.warnNamespaces={checkout}'] }));
    expect(policy.mode).toBe('warn');
    expect([...policy.warnNamespaces]).toEqual(['checkout']);
    expect(() => render({ set: ['policy.mode=audit'] })).toThrow(/mode/);
  });

  it('writes the break-glass issuer and mounts its inline keys beside the issuers', () => {
    const objects = render({ valuesFile: join(CHART, 'ci', 'rollout-values.yaml') });
    expect(policyOf(objects).breakGlass).toEqual({
      issuer: 'https://break-glass.example.com',
      jwks: { kind: 'file', path: '/etc/twokey/issuers/break-glass.json' },
      refreshSeconds: 300,
      maxTtlSeconds: 7200,
      reviewWindowSeconds: 43200,
    });
    const secret = kindOf(objects, 'Secret').find((s) => String(at(s, 'metadata', 'name')).endsWith('-jwks'));
    expect(JSON.parse(String(at(secret, 'stringData', 'break-glass.json')))).toMatchObject({ keys: [{ kid: 'break-glass-2026' }] });
  });

  it('refuses a break-glass issuer that is also an ordinary issuer, or has no keys', () => {
    expect(() =>
      render({ set: ['breakGlass.issuer=https://change.example.com', 'breakGlass.jwksUrl=https://change.example.com/jwks'] }),
    ).toThrow(/is also an ordinary issuer/);
    expect(() => render({ set: ['breakGlass.issuer=https://break-glass.example.com'] })).toThrow(
      /set exactly one of jwksUrl, jwks and existingSecret/,
    );
  });
});

describe('countersigning, approver groups and identities in the chart', () => {
  const policyOf = (objects: JsonObject[]) =>
    parsePolicy(at(policyConfigMap(objects), 'data', 'policy.yaml') as string, '/etc/twokey/policy');

  it('leaves them off by default', () => {
    const policy = policyOf(render());
    expect(policy.countersign).toBe(false);
    expect(policy.approvers).toBeUndefined();
    expect(policy.identities).toBeUndefined();
    expect(policy.approvalRules).toEqual([]);
  });

  it('writes the registry, the rules and the identity mapping into a policy twokey loads', () => {
    const policy = policyOf(render({ valuesFile: join(CHART, 'ci', 'quorum-values.yaml') }));
    expect(policy.countersign).toBe(true);
    expect(policy.approvers?.map((a) => [a.identity, a.groups])).toEqual([
      ['bob@example.com', ['sre']],
      ['carol@example.com', []],
    ]);
    expect(policy.approvalRules).toMatchObject([{ namespaces: ['payments'], required: 2, groups: [{ group: 'sre', atLeast: 1 }] }]);
    expect(policy.identities?.unmapped).toBe('refuse');
    expect(policy.identities?.rules.map((r) => r.map('oidc:alice@example.com'))).toEqual(['alice@example.com']);
  });

  it('refuses an approver without keys', () => {
    expect(() => render({ set: ['policy.approvers[0].identity=bob@example.com'] })).toThrow(/jwks/);
  });
});
