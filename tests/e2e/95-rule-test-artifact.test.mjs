// `edgeauth rule test X.rule`: the signed artifact runs in the gateway
// component itself (pulley32), started by the CLI on a loopback port with
// temporary state, uploaded through the admin API and run by its dry run. It
// prints what a native run of the same crate prints (same commands, same
// report line, ending "ran in the gateway component (pulley32)"), honours
// --now, --rules and a tenant other than `default`, and an artifact the
// gateway would refuse (a changed byte, an untrusted key, another name) is
// refused with the gateway's own words and a non-zero exit.
//
// The crate is made with `edgeauth rule new` and built into the shared target
// directory (as tests/e2e/95-rule-kit does; what it compiles is cached).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from '../lib/procs.mjs';
import { COMPONENT, HOST_BIN } from '../lib/stack.mjs';

const run = promisify(execFile);
const FIXTURES = path.join(ROOT, 'plugins/fixtures');
const NOW = '2026-12-07T09:30:00Z';
const ENV = {
  ...process.env,
  CARGO_TARGET_DIR: path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target'),
  CARGO_TERM_COLOR: 'never',
};
delete ENV.EDGEAUTH_RULE_SIGNING_KEY;

let tmp;
let cliTmp; // the CLI's TMPDIR: where its gateway keeps its state
let crate;
let artifact;
let trusted;
let untrusted;

/** `edgeauth ...` in `cwd`: { code, stdout, stderr } (never throws). */
async function edgeauth(args, { cwd = tmp } = {}) {
  try {
    const r = await run(HOST_BIN, args, { cwd, env: { ...ENV, TMPDIR: cliTmp }, encoding: 'utf8', maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(e) };
  }
}

/** A signing key file made by `rule keygen`; its public spec. */
async function keygen(kid, file) {
  const r = await edgeauth(['rule', 'keygen', '--kid', kid]);
  assert.equal(r.code, 0, r.stderr);
  fs.writeFileSync(file, r.stdout);
  return r.stdout.split('\n').filter((l) => l && !l.startsWith('#'))[1];
}

/** `rule test` of `file` in the gateway component built for the tests. */
const inGateway = (file, event, ...more) => edgeauth(['rule', 'test', file, '--event', path.join(FIXTURES, event),
  '--component', COMPONENT, ...more]);

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-rule-test-artifact-'));
  cliTmp = path.join(tmp, 'cli-tmp');
  fs.mkdirSync(cliTmp);
  crate = path.join(tmp, 'welcome-rule');
  const made = await edgeauth(['rule', 'new', 'welcome-rule']);
  assert.equal(made.code, 0, made.stderr);
  fs.copyFileSync(path.join(ROOT, 'Cargo.lock'), path.join(crate, 'Cargo.lock'));
  trusted = { file: path.join(tmp, 'trusted.key') };
  trusted.public = await keygen('kit1', trusted.file);
  untrusted = { file: path.join(tmp, 'untrusted.key') };
  // The same kid: only the key differs.
  untrusted.public = await keygen('kit1', untrusted.file);
  artifact = path.join(tmp, 'welcome-rule.rule');
  const built = await edgeauth(['rule', 'build', crate, '--name', 'welcome-rule', '--key', trusted.file, '-o', artifact]);
  assert.equal(built.code, 0, built.stderr);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a signed artifact runs in the gateway component and prints what the native run prints', { timeout: 600_000 }, async () => {
  const native = await edgeauth(['rule', 'test', crate, '--event', path.join(FIXTURES, 'first-login.json'), '--now', NOW]);
  assert.equal(native.code, 0, native.stderr);

  const r = await inGateway(artifact, 'first-login.json', '--key', trusted.file, '--now', NOW);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), [
    { command: 'patch-app-metadata', patch: { first_login_ms: Date.parse(NOW) } },
    { command: 'set-claim', name: 'https://example.com/login_count', value: 1 },
  ]);
  assert.deepEqual(JSON.parse(r.stdout), JSON.parse(native.stdout), 'the same commands as the native run');
  assert.match(r.stderr, /gateway: uploaded rule `welcome-rule` version [0-9a-f]{16} for tenant `default`/);
  assert.match(r.stderr, /rule `welcome-rule` OK: 2 command\(s\); fuel \d+ of 50000000; memory \d+ of 16777216 bytes; instantiate \d+ us, call \d+ us, \d+ us in all \(ran in the gateway component \(pulley32\); load \d+ us\)/);
  assert.doesNotMatch(r.stderr, /outbound/, 'a rule without allowed hosts calls nothing anyway');
  const fuel = (s) => Number(/fuel (\d+) of/.exec(s)[1]);
  assert.ok(fuel(r.stderr) > 0, r.stderr);
  // Fuel counts the rule's wasm instructions: the same on both interpreters.
  assert.equal(fuel(r.stderr), fuel(native.stderr), `${r.stderr}\n${native.stderr}`);
  const memory = (s) => Number(/memory (\d+) of/.exec(s)[1]);
  assert.equal(memory(r.stderr), memory(native.stderr));
  // Nothing of the gateway is left behind.
  assert.deepEqual(fs.readdirSync(cliTmp).filter((f) => f.startsWith('edgeauth-rule-test-')), []);

  // The trusted key as the gateway's rule_keys has it; the entry's config
  // and budgets from --rules; a tenant other than `default` (saml.json's `acme`).
  const rules = path.join(tmp, 'rules.json');
  fs.writeFileSync(rules, JSON.stringify({ tenants: {
    default: { chain: [{ name: 'welcome-rule', config: { claim_namespace: 'https://acme.test/' }, fuel: 2000000,
      allowed_hosts: ['https://crm.example'] }] },
  } }));
  const configured = await inGateway(artifact, 'returning-user.json', '--trust', trusted.public, '--rules', rules);
  assert.equal(configured.code, 0, configured.stderr);
  assert.deepEqual(JSON.parse(configured.stdout), [{ command: 'set-claim', name: 'https://acme.test/login_count', value: 13 }]);
  assert.match(configured.stderr, /fuel \d+ of 2000000;/);
  assert.match(configured.stderr, /the gateway's dry run makes no outbound calls: the rule's http calls to https:\/\/crm\.example get `unreachable`/);
  const quiet = await inGateway(artifact, 'returning-user.json', '--trust', trusted.public, '--rules', rules, '--no-http');
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.doesNotMatch(quiet.stderr, /outbound/);

  const acme = await inGateway(artifact, 'saml.json', '--key', trusted.file);
  assert.equal(acme.code, 0, acme.stderr);
  assert.match(acme.stderr, /for tenant `acme`/);
  const nativeAcme = await edgeauth(['rule', 'test', crate, '--event', path.join(FIXTURES, 'saml.json')]);
  assert.deepEqual(JSON.parse(acme.stdout), JSON.parse(nativeAcme.stdout));
});

test('the gateway refuses a changed byte, an untrusted key and another name, in its own words', { timeout: 600_000 }, async () => {
  const bytes = fs.readFileSync(artifact);
  const flipped = path.join(tmp, 'flipped.rule');
  const b = Buffer.from(bytes);
  b[b.length - 100] ^= 0x01;
  fs.writeFileSync(flipped, b);
  const tampered = await inGateway(flipped, 'first-login.json', '--key', trusted.file);
  assert.notEqual(tampered.code, 0);
  assert.match(tampered.stderr, /edgeauth: error: the gateway refused the artifact: HTTP 4\d\d: .+/);
  assert.doesNotMatch(tampered.stderr, /panicked/);
  assert.equal(tampered.stdout, '');

  const other = await inGateway(artifact, 'first-login.json', '--key', untrusted.file);
  assert.notEqual(other.code, 0);
  assert.match(other.stderr, /the gateway refused the artifact: HTTP 4\d\d: .*signature/);
  const otherTrust = await inGateway(artifact, 'first-login.json', '--trust', untrusted.public);
  assert.notEqual(otherTrust.code, 0);
  assert.match(otherTrust.stderr, /the gateway refused the artifact: HTTP 4\d\d: .*signature/);

  const renamed = await inGateway(artifact, 'first-login.json', '--key', trusted.file, '--name', 'another-rule');
  assert.notEqual(renamed.code, 0);
  assert.match(renamed.stderr, /the gateway refused the artifact: HTTP 4\d\d: .*welcome-rule/);

  const noKey = await inGateway(artifact, 'first-login.json');
  assert.notEqual(noKey.code, 0);
  assert.match(noKey.stderr, /--key FILE .*--trust/);
});

test('a missing gateway component is named with how to build it', async () => {
  const manifest = path.join(tmp, 'spin.toml');
  fs.writeFileSync(manifest, fs.readFileSync(path.join(ROOT, 'spin.toml'), 'utf8')
    .replace(/^source = ".*"$/m, 'source = "no/such/edgeauth_component.wasm"'));
  const r = await edgeauth(['rule', 'test', artifact, '--event', path.join(FIXTURES, 'first-login.json'),
    '--key', trusted.file, '--manifest', manifest]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /the gateway component .*no\/such\/edgeauth_component\.wasm is missing: build it with `cargo build --target wasm32-wasip2 --release -p edgeauth-component`.*or pass --component PATH/);

  // The flags of the gateway run are refused for a native run.
  const native = await edgeauth(['rule', 'test', crate, '--event', path.join(FIXTURES, 'first-login.json'), '--key', trusted.file]);
  assert.notEqual(native.code, 0);
  assert.match(native.stderr, /--key is for a signed \.rule artifact/);
});
