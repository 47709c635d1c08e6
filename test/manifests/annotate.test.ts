/**
 * Annotations spliced into manifests as written: helm template output, JSON, flow mappings, CRLF,
 * comments and block scalars; every byte outside the new annotations unchanged, and anything that
 * cannot be edited exactly refused.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { AnnotateError, addAnnotations } from '../../src/manifests/annotate.ts';

const TOKEN = 'eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJib2IifQ.c2ln';
const one = (annotations: Record<string, string>, index = 0) => new Map([[index, annotations]]);

const HELM = `---
# Source: shop/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports: [{port: 80}]
---
# Source: shop/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels:
    app: api # the label the Service selects
spec:
  template:
    spec:
      containers:
        - name: api
          image: "registry.example/api:1.0"
`;

describe('adding annotations to manifests as written', () => {
  it('adds an annotations block to a helm template document and leaves every other byte alone', () => {
    const out = addAnnotations(HELM, one({ 'approval.twokey.dev/bob': TOKEN }, 1));
    expect(out).toBe(
      HELM.replace(
        '    app: api # the label the Service selects\n',
        `    app: api # the label the Service selects\n  annotations:\n    approval.twokey.dev/bob: "${TOKEN}"\n`,
      ),
    );
  });

  it('appends to existing annotations in their indentation, after a trailing comment and a block scalar', () => {
    const text =
      'metadata:\n    name: api\n    annotations:\n        note: |\n            two\n            lines\n        team: pay # owner\nspec: {}\n';
    expect(addAnnotations(text, one({ 'approval.twokey.dev/bob': TOKEN, 'approval.twokey.dev/carol': TOKEN }))).toBe(
      'metadata:\n    name: api\n    annotations:\n        note: |\n            two\n            lines\n        team: pay # owner\n' +
        `        approval.twokey.dev/bob: "${TOKEN}"\n        approval.twokey.dev/carol: "${TOKEN}"\nspec: {}\n`,
    );
    const last = 'metadata:\n  annotations:\n    note: |\n      text\nspec: {}\n';
    expect(addAnnotations(last, one({ a: 'b' }))).toBe('metadata:\n  annotations:\n    note: |\n      text\n    a: "b"\nspec: {}\n');
  });

  it('edits JSON as JSON', () => {
    const json =
      '{\n  "apiVersion": "apps/v1",\n  "kind": "Deployment",\n  "metadata": {"name": "api", "annotations": {}},\n  "spec": {}\n}\n';
    const out = addAnnotations(json, one({ 'approval.twokey.dev/bob': TOKEN }));
    expect(out).toBe(json.replace('"annotations": {}', `"annotations": {"approval.twokey.dev/bob": "${TOKEN}"}`));
    expect(JSON.parse(out).metadata.annotations).toEqual({ 'approval.twokey.dev/bob': TOKEN });
    const bare = '{"kind": "Deployment", "metadata": {"name": "api"}}';
    expect(JSON.parse(addAnnotations(bare, one({ k: 'v' }))).metadata).toEqual({ name: 'api', annotations: { k: 'v' } });
  });

  it('fills an empty annotations key, keeps CRLF line ends, and adds a line at the end of a file without one', () => {
    expect(addAnnotations('metadata:\n  name: api\n  annotations:\nspec: {}\n', one({ k: 'v' }))).toBe(
      'metadata:\n  name: api\n  annotations:\n    k: "v"\nspec: {}\n',
    );
    expect(addAnnotations('metadata:\r\n  name: api\r\nspec: {}\r\n', one({ k: 'v' }))).toBe(
      'metadata:\r\n  name: api\r\n  annotations:\r\n    k: "v"\r\nspec: {}\r\n',
    );
    expect(addAnnotations('kind: Namespace\nmetadata:\n  name: payments', one({ k: 'v' }))).toBe(
      'kind: Namespace\nmetadata:\n  name: payments\n  annotations:\n    k: "v"\n',
    );
  });

  it('replaces a value under the same key, and changes nothing when it is already there', () => {
    const text = `metadata:\n  annotations:\n    approval.twokey.dev/bob: old-token # was\n`;
    expect(addAnnotations(text, one({ 'approval.twokey.dev/bob': TOKEN }))).toBe(
      `metadata:\n  annotations:\n    approval.twokey.dev/bob: "${TOKEN}" # was\n`,
    );
    const done = addAnnotations(HELM, one({ 'approval.twokey.dev/bob': TOKEN }, 1));
    expect(addAnnotations(done, one({ 'approval.twokey.dev/bob': TOKEN }, 1))).toBe(done);
  });

  it('quotes values so that YAML 1.1 readers (kubectl) do not take them for booleans', () => {
    const out = addAnnotations('metadata:\n  name: x\n', one({ owner: 'y', reviewed: 'yes', count: '1' }));
    expect(out).toContain('owner: "y"');
    const [document] = parseAllDocuments(out, { version: '1.1' }) as ReturnType<typeof parseAllDocuments> & unknown[];
    expect((document as { toJS(): { metadata: { annotations: unknown } } }).toJS().metadata.annotations).toEqual({
      owner: 'y',
      reviewed: 'yes',
      count: '1',
    });
  });

  it('refuses documents it cannot edit exactly, naming them', () => {
    expect(() => addAnnotations('- a\n- b\n', one({ k: 'v' }))).toThrow(new AnnotateError('document 1: it is not a mapping'));
    expect(() => addAnnotations('kind: X\n', one({ k: 'v' }))).toThrow('document 1: it has no metadata mapping');
    expect(() => addAnnotations('metadata:\n  annotations: [a]\n', one({ k: 'v' }))).toThrow(
      'document 1: metadata.annotations is not a mapping',
    );
    expect(() => addAnnotations('metadata:\n  annotations:\n    k: [1]\n', one({ k: 'v' }))).toThrow('annotation k is not a string');
    expect(() => addAnnotations(HELM, one({ k: 'v' }, 5))).toThrow('there is no document 6');
  });
});
