// The deployment files under deploy/ (deploy/README.md), checked without a
// cluster and without starting anything: every SpinApp in deploy/spinkube/
// validates against the SpinApp CRD's openAPIV3Schema (deploy/schema/, a copy
// of spin-operator's) and names no field that schema lacks (Kubernetes would
// drop it without a word); it sets every variable spin.toml requires, names
// only variables spin.toml has (Spin ignores an unknown one, so a typo would
// leave a setting at its default), and takes every `secret = true` variable
// from a secretKeyRef, never from a plain value; each secretKeyRef names a
// Secret of deploy/spinkube/ holding that key (or is optional); the Secrets
// hold placeholders only; deploy/runtime-config.toml (and the Secret the
// SpinApp loads its runtime config from) puts the `default` store in Redis.
// The same checks are then run on broken copies, which they must refuse.
//
// Runs under both runtimes (it does not use one) and needs no build.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv from 'ajv';
import { parse as parseToml } from 'smol-toml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEPLOY = path.join(ROOT, 'deploy');
const CRD_FILE = path.join(DEPLOY, 'schema', 'core.spinkube.dev_spinapps.yaml');
const read = (f) => fs.readFileSync(f, 'utf8');
const clone = (v) => structuredClone(v);

// ---------------------------------------------------------------- inputs

/** spin.toml's [variables]: name -> { required, secret, default }. */
function spinVariables() {
  const vars = parseToml(read(path.join(ROOT, 'spin.toml'))).variables;
  assert.ok(vars && Object.keys(vars).length > 0, 'spin.toml has [variables]');
  return vars;
}

/** Every YAML document of deploy/spinkube/, with the file it came from. */
function manifests() {
  const dir = path.join(DEPLOY, 'spinkube');
  const docs = [];
  for (const f of fs.readdirSync(dir).filter((n) => /\.ya?ml$/.test(n)).sort()) {
    for (const d of YAML.parseAllDocuments(read(path.join(dir, f)))) {
      assert.deepEqual(d.errors, [], `${f}: YAML errors`);
      const value = d.toJS();
      if (value != null) docs.push({ file: `deploy/spinkube/${f}`, value });
    }
  }
  return docs;
}

/** The CRD's openAPIV3Schema for core.spinkube.dev/v1alpha1 SpinApp. */
let crdCache;
function crdSchema() {
  if (crdCache) return crdCache;
  const crd = YAML.parse(read(CRD_FILE));
  assert.equal(crd.kind, 'CustomResourceDefinition');
  assert.equal(crd.spec.group, 'core.spinkube.dev');
  assert.equal(crd.spec.names.kind, 'SpinApp');
  const v = crd.spec.versions.find((x) => x.name === 'v1alpha1' && x.served);
  assert.ok(v, 'the CRD serves v1alpha1');
  crdCache = v.schema.openAPIV3Schema;
  return crdCache;
}

// ---------------------------------------------------------------- checks

let validator;
/** Ajv for the CRD schema: its Kubernetes extensions are annotations, its formats Kubernetes'. */
function schemaValidator() {
  if (validator) return validator;
  const ajv = new Ajv({
    allErrors: true,
    strict: true,
    strictTypes: false, // the CRD has `anyOf` branches and defaults Ajv's strict typing flags
    strictRequired: false,
    formats: {
      int32: { type: 'number', validate: (n) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 },
      int64: { type: 'number', validate: (n) => Number.isSafeInteger(n) },
      'date-time': (s) => !Number.isNaN(Date.parse(s)),
    },
  });
  ajv.addVocabulary(['x-kubernetes-int-or-string', 'x-kubernetes-list-type', 'x-kubernetes-list-map-keys',
    'x-kubernetes-map-type', 'x-kubernetes-preserve-unknown-fields', 'x-kubernetes-embedded-resource']);
  validator = ajv.compile(crdSchema());
  return validator;
}

/**
 * Fields the schema does not know. Kubernetes prunes them from a structural
 * schema's objects silently (kubectl only warns), so a misspelt field would
 * simply not be applied: counted as a problem here.
 */
function unknownFields(schema, value, at = '') {
  if (!schema || value === null || typeof value !== 'object') return [];
  if (Array.isArray(value)) return value.flatMap((v, i) => unknownFields(schema.items, v, `${at}[${i}]`));
  if (schema['x-kubernetes-preserve-unknown-fields']) return [];
  const out = [];
  for (const [k, v] of Object.entries(value)) {
    const sub = schema.properties?.[k] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : null);
    if (sub) out.push(...unknownFields(sub, v, `${at}.${k}`));
    else if (schema.properties && !schema.additionalProperties) out.push(`${at}.${k}: not a field of the SpinApp schema`);
  }
  return out;
}

/** Problems of one SpinApp against the CRD schema and spin.toml's variables. */
function spinAppProblems(app, vars) {
  const problems = [];
  const validate = schemaValidator();
  if (!validate(app)) {
    for (const e of validate.errors) problems.push(`schema: ${e.instancePath || '/'} ${e.message}`);
  }
  problems.push(...unknownFields(crdSchema(), app).map((p) => `schema: ${p}`));
  if (app.apiVersion !== 'core.spinkube.dev/v1alpha1' || app.kind !== 'SpinApp') {
    problems.push(`not a core.spinkube.dev/v1alpha1 SpinApp: ${app.apiVersion} ${app.kind}`);
  }
  const given = Array.isArray(app.spec?.variables) ? app.spec.variables : [];
  const seen = new Set();
  for (const v of given) {
    const name = v?.name;
    if (seen.has(name)) problems.push(`variable ${name}: given twice`);
    seen.add(name);
    if (!Object.hasOwn(vars, name)) {
      problems.push(`variable ${name}: not in spin.toml's [variables] (Spin would ignore it)`);
      continue;
    }
    const hasValue = v.value !== undefined;
    const from = v.valueFrom;
    if (hasValue === (from !== undefined)) problems.push(`variable ${name}: needs exactly one of value and valueFrom`);
    if (vars[name].secret) {
      if (hasValue) problems.push(`variable ${name}: secret in spin.toml, given as a plain value`);
      else if (!from?.secretKeyRef || Object.keys(from).length !== 1) {
        problems.push(`variable ${name}: secret in spin.toml, must come from valueFrom.secretKeyRef only`);
      } else if (!from.secretKeyRef.name || !from.secretKeyRef.key) {
        problems.push(`variable ${name}: its secretKeyRef needs a name and a key`);
      }
    }
  }
  for (const [name, spec] of Object.entries(vars)) {
    if (spec.required && !seen.has(name)) problems.push(`variable ${name}: required by spin.toml, not given`);
  }
  return problems;
}

/** Problems of a runtime config's text: `default` must be a Redis store the host and Spin both take. */
function runtimeConfigProblems(text) {
  let rc;
  try {
    rc = parseToml(text);
  } catch (e) {
    return [`not TOML: ${e.message.split('\n')[0]}`];
  }
  const problems = [];
  // The project's host reads only [key_value_store.<label>] and stops on anything else.
  for (const k of Object.keys(rc)) if (k !== 'key_value_store') problems.push(`[${k}]: the edgeauth host refuses other sections`);
  const store = rc.key_value_store?.default;
  if (!store) return [...problems, 'no [key_value_store.default]'];
  if (store.type !== 'redis') problems.push(`key_value_store.default.type is ${JSON.stringify(store.type)}, not "redis"`);
  let url = null;
  try { url = new URL(store.url); } catch { /* below */ }
  if (url?.protocol !== 'redis:' || !url.hostname) {
    problems.push(`key_value_store.default.url ${JSON.stringify(store.url)} is not a redis:// URL with a host`);
  }
  for (const k of Object.keys(store)) if (!['type', 'url'].includes(k)) problems.push(`key_value_store.default.${k}: not a setting`);
  return problems;
}

/** Secrets of the manifests: name -> { file, data: key -> text }. */
function secretsOf(docs) {
  const out = new Map();
  for (const { file, value } of docs.filter((d) => d.value.kind === 'Secret' && d.value.apiVersion === 'v1')) {
    const data = { ...value.stringData };
    for (const [k, b64] of Object.entries(value.data ?? {})) data[k] = Buffer.from(b64, 'base64').toString('utf8');
    out.set(value.metadata.name, { file, data });
  }
  return out;
}

/** Problems of the SpinApp's references into the Secrets (secretKeyRef, loadFromSecret). */
function referenceProblems(app, secrets) {
  const problems = [];
  for (const v of app.spec?.variables ?? []) {
    const ref = v.valueFrom?.secretKeyRef;
    if (!ref) continue;
    const s = secrets.get(ref.name);
    if (!s) problems.push(`variable ${v.name}: Secret ${ref.name} is not in deploy/spinkube/`);
    else if (!(ref.key in s.data) && !ref.optional) problems.push(`variable ${v.name}: Secret ${ref.name} has no key ${ref.key}`);
  }
  const rcName = app.spec?.runtimeConfig?.loadFromSecret;
  if (!rcName) problems.push('spec.runtimeConfig.loadFromSecret is not set: each replica would get its own store');
  else if (!secrets.get(rcName)?.data['runtime-config.toml']) {
    problems.push(`spec.runtimeConfig.loadFromSecret: Secret ${rcName} with key runtime-config.toml is not in deploy/spinkube/`);
  } else {
    problems.push(...runtimeConfigProblems(secrets.get(rcName).data['runtime-config.toml']).map((p) => `Secret ${rcName}: ${p}`));
  }
  return problems;
}

// ---------------------------------------------------------------- the files

const docs = manifests();
const apps = docs.filter((d) => d.value.kind === 'SpinApp');
const vars = spinVariables();

test('the CRD copy is the file deploy/schema/SOURCE names, unmodified', () => {
  const bytes = fs.readFileSync(CRD_FILE);
  const blob = crypto.createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
  const source = read(path.join(DEPLOY, 'schema', 'SOURCE'));
  assert.match(source, new RegExp(`git blob\\s+${blob}\\b`), `SOURCE names the blob ${blob} of the copy`);
  assert.match(source, /github\.com\/spinkube\/spin-operator/);
  assert.match(source, /commit\s+[0-9a-f]{40}\b/);
  assert.match(source, /Apache License, Version 2\.0/);
});

test('every SpinApp validates against the CRD schema, with 3 replicas', () => {
  assert.ok(apps.length >= 1, 'deploy/spinkube/ has a SpinApp');
  const validate = schemaValidator();
  for (const { file, value } of apps) {
    assert.ok(validate(value), `${file}: ${JSON.stringify(validate.errors, null, 1)}`);
    assert.deepEqual(unknownFields(crdSchema(), value), [], `${file}: fields the schema lacks`);
    assert.equal(value.spec.replicas, 3, `${file}: replicas`);
  }
});

test('every SpinApp: required variables given, only spin.toml\'s names, secrets only from secretKeyRef', () => {
  const secretNames = Object.keys(vars).filter((n) => vars[n].secret);
  // The brief's list; whatever else spin.toml marks secret is covered by the loop below.
  for (const n of ['session_keys', 'assertion_keys', 'oidc_client_secret', 'connections', 'webhooks']) {
    assert.ok(secretNames.includes(n), `spin.toml marks ${n} secret`);
  }
  for (const { file, value } of apps) {
    assert.deepEqual(spinAppProblems(value, vars), [], file);
    const given = new Map(value.spec.variables.map((v) => [v.name, v]));
    // Every secret variable is wired (from the Secret), so setting one needs no manifest change.
    for (const n of secretNames) {
      assert.ok(given.get(n)?.valueFrom?.secretKeyRef, `${file}: secret variable ${n} comes from a secretKeyRef`);
    }
    assert.ok(given.get('public_url')?.value?.startsWith('https://'), `${file}: public_url is the balancer's https URL`);
  }
});

test('every SpinApp\'s Secrets are in deploy/spinkube/, with placeholders only', () => {
  const secrets = secretsOf(docs);
  for (const { file, value } of apps) assert.deepEqual(referenceProblems(value, secrets), [], file);
  const held = secrets.get('edgeauth-secrets');
  assert.ok(held, 'the Secret edgeauth-secrets');
  for (const [k, v] of Object.entries(held.data)) {
    // Never a real key: a value is empty or says it is to be replaced.
    assert.ok(v === '' || /REPLACE-ME/.test(v), `${held.file}: ${k} is not a marked placeholder`);
    assert.doesNotMatch(v, /[A-Za-z0-9_-]{43}/, `${held.file}: ${k} looks like a key`);
  }
});

test('deploy/runtime-config.toml puts the default store in Redis', () => {
  const text = read(path.join(DEPLOY, 'runtime-config.toml'));
  assert.deepEqual(runtimeConfigProblems(text), []);
  assert.match(text, /appendonly/, 'it says how Redis keeps its data');
  // The Secret the SpinApp loads is the same store.
  const inSecret = secretsOf(docs).get(apps[0].value.spec.runtimeConfig.loadFromSecret).data['runtime-config.toml'];
  assert.deepEqual(parseToml(inSecret), parseToml(text), 'the runtime config Secret holds deploy/runtime-config.toml');
});

// ---------------------------------------------------------------- the checks can fail

test('the same checks refuse broken manifests', () => {
  const good = apps[0].value;
  assert.deepEqual(spinAppProblems(good, vars), [], 'the original passes');
  const broken = (what, edit, expected) => {
    const app = clone(good);
    edit(app);
    const problems = spinAppProblems(app, vars);
    assert.ok(problems.some((p) => expected.test(p)), `${what}: expected a problem matching ${expected}, got ${JSON.stringify(problems)}`);
  };
  const at = (app, name) => app.spec.variables.find((v) => v.name === name);
  broken('a secret given as a plain value', (a) => { const v = at(a, 'session_keys'); delete v.valueFrom; v.value = 'k1:AAAA'; },
    /session_keys: secret in spin\.toml, given as a plain value/);
  broken('a secret from a ConfigMap', (a) => { at(a, 'webhooks').valueFrom = { configMapKeyRef: { name: 'c', key: 'webhooks' } }; },
    /webhooks: secret in spin\.toml, must come from valueFrom\.secretKeyRef/);
  broken('replicas: "three"', (a) => { a.spec.replicas = 'three'; }, /^schema: \/spec\/replicas must be integer/);
  broken('replicas beyond int32', (a) => { a.spec.replicas = 2 ** 31; }, /^schema: \/spec\/replicas must match format "int32"/);
  broken('no image', (a) => { delete a.spec.image; }, /^schema: \/spec must have required property 'image'/);
  broken('a misspelt field', (a) => { a.spec.runtimeConfig = { secretName: a.spec.runtimeConfig.loadFromSecret }; },
    /^schema: \.spec\.runtimeConfig\.secretName: not a field/);
  broken('a misspelt variable', (a) => { at(a, 'oidc_scopes').name = 'oidc_scope'; }, /oidc_scope: not in spin\.toml/);
  broken('a required variable left out', (a) => { a.spec.variables = a.spec.variables.filter((v) => v.name !== 'assertion_keys'); },
    /assertion_keys: required by spin\.toml, not given/);
  broken('a variable given twice', (a) => { a.spec.variables.push({ name: 'public_url', value: 'https://x.example' }); },
    /public_url: given twice/);

  const secrets = secretsOf(docs);
  const refs = (edit) => { const a = clone(good); edit(a); return referenceProblems(a, secrets); };
  assert.ok(refs((a) => { at(a, 'session_keys').valueFrom.secretKeyRef.key = 'session_key'; })
    .some((p) => /Secret edgeauth-secrets has no key session_key/.test(p)));
  assert.ok(refs((a) => { delete a.spec.runtimeConfig; }).some((p) => /loadFromSecret is not set/.test(p)));

  for (const [text, expected] of [
    ['[key_value_store.default]\ntype = "spin"\n', /type is "spin", not "redis"/],
    ['[key_value_store.default]\ntype = "redis"\nurl = "http://redis:6379"\n', /not a redis:\/\/ URL/],
    ['[key_value_store.other]\ntype = "redis"\nurl = "redis://r:6379"\n', /no \[key_value_store\.default\]/],
    ['[key_value_store.default]\ntype = "redis"\nurl = "redis://r:6379"\n[sqlite_database.default]\ntype = "spin"\n',
      /\[sqlite_database\]: the edgeauth host refuses/],
  ]) {
    const problems = runtimeConfigProblems(text);
    assert.ok(problems.some((p) => expected.test(p)), `${JSON.stringify(text)}: ${JSON.stringify(problems)}`);
  }
});
