// The tenant's local rule kit, as plugins/README.md tells a new tenant to use
// it: `edgeauth rule new` makes a crate whose own tests pass as made,
// `rule test` runs it for wasm on the shipped sample events (plugins/fixtures)
// with the clock set, and refuses an event file with a misspelled field; then
// the same crate is built, signed, uploaded and runs in a real sign-in.
//
// The crate builds with cargo into the shared target directory (with the
// workspace's Cargo.lock, so it reuses what scripts/test built); the first
// run compiles its test harness' dependencies (a minute or two on 2 cores).
//
// The same for `rule new --lang js`: its `node --test` passes as made and
// fails when the rule is broken, and `rule test` builds it into a component
// and runs it. Building and compiling the JS engine takes minutes cold, so
// the template is the one tests/lib/js-rules.mjs prebuilds into its caches
// (scripts/test runs it first; jsTemplate() here is then a few seconds).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request } from '../lib/http.mjs';
import { ROOT } from '../lib/procs.mjs';
import { HOST_BIN, startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, verifyAssertion, originSaw } from '../lib/gateway-flow.mjs';
import { HOST_CACHE, TEMPLATE_JS, jsTemplate } from '../lib/js-rules.mjs';

const run = promisify(execFile);
const FIXTURES = path.join(ROOT, 'plugins/fixtures');
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const CARGO_ENV = {
  ...process.env,
  CARGO_TARGET_DIR: path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target'),
  CARGO_TERM_COLOR: 'never',
};

let tmp;
let crate;
let stack;

/** `edgeauth ...` in `cwd`: { code, stdout, stderr } (never throws). */
async function edgeauth(args, { cwd = tmp, env = {} } = {}) {
  try {
    const r = await run(HOST_BIN, args, { cwd, env: { ...CARGO_ENV, ...env }, encoding: 'utf8', maxBuffer: 64 << 20 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(e) };
  }
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-rule-kit-'));
  crate = path.join(tmp, 'welcome-rule');
  const made = await edgeauth(['rule', 'new', 'welcome-rule']);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /created rule crate `welcome-rule`/);
  fs.copyFileSync(path.join(ROOT, 'Cargo.lock'), path.join(crate, 'Cargo.lock'));
});

after(async () => {
  if (stack) await stopStack(stack);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a new rule crate passes its own tests as made', { timeout: 900_000 }, async () => {
  const r = await run('cargo', ['test', '--offline', '--quiet'], { cwd: crate, env: CARGO_ENV, encoding: 'utf8', maxBuffer: 64 << 20 })
    .catch((e) => assert.fail(`cargo test in the new crate failed:\n${e.stdout}\n${e.stderr}`));
  assert.match(r.stdout, /test result: ok\. 3 passed/);
  for (const f of fs.readdirSync(FIXTURES)) assert.ok(fs.existsSync(path.join(crate, 'fixtures', f)), `fixture ${f} shipped`);
});

test('rule test builds the crate and runs it on sample events as a sign-in would', { timeout: 900_000 }, async () => {
  const first = await edgeauth(['rule', 'test', crate, '--event', path.join(FIXTURES, 'first-login.json'),
    '--now', '2026-12-07T09:30:00Z'], { cwd: crate });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /built .*welcome_rule\.wasm/, 'the built file is named');
  const used = first.stderr.match(/rule `welcome-rule` OK: 2 command\(s\); fuel \d+ of 50000000; memory (\d+) of 16777216 bytes/);
  assert.ok(used, first.stderr);
  // The crate's .cargo/config.toml (a 128 KiB stack): the rule starts in a
  // few pages, not rustc's 1 MiB-stack default of 18 (zeroed per sign-in).
  assert.ok(Number(used[1]) <= 512 * 1024, `the rule starts with ${used[1]} bytes of memory`);
  assert.deepEqual(JSON.parse(first.stdout), [
    { command: 'patch-app-metadata', patch: { first_login_ms: Date.parse('2026-12-07T09:30:00Z') } },
    { command: 'set-claim', name: 'https://example.com/login_count', value: 1 },
  ]);

  const denied = await edgeauth(['rule', 'test', '.', '--event', path.join(FIXTURES, 'unverified-email.json')], { cwd: crate });
  assert.equal(denied.code, 0, denied.stderr);
  assert.deepEqual(JSON.parse(denied.stdout), [{ command: 'deny', reason: 'a verified email address is required' }]);

  // The rule's config from the tenant's entry, as the gateway gives it.
  const rules = path.join(tmp, 'rules.json');
  fs.writeFileSync(rules, JSON.stringify({ tenants: { default: { chain: [{ name: 'welcome-rule', config: { claim_namespace: 'https://acme.test/' } }] } } }));
  const configured = await edgeauth(['rule', 'test', '.', '--event', path.join(FIXTURES, 'returning-user.json'), '--rules', rules], { cwd: crate });
  assert.deepEqual(JSON.parse(configured.stdout), [{ command: 'set-claim', name: 'https://acme.test/login_count', value: 13 }]);

  // A misspelled field would otherwise be dropped silently and the rule see
  // `email_verified: false`.
  const typo = path.join(tmp, 'typo.json');
  fs.writeFileSync(typo, JSON.stringify({ user: { sub: 'a', email: 'a@example.com', emailVerified: true } }));
  const refused = await edgeauth(['rule', 'test', '.', '--event', typo], { cwd: crate });
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /unknown field user\.emailVerified/);

  const bad = await edgeauth(['rule', 'test', '.', '--event', path.join(FIXTURES, 'saml.json'), '--now', 'tomorrow'], { cwd: crate });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--now "tomorrow".*RFC 3339/);
});

test('the crate built and signed by the kit runs in a real sign-in', { timeout: 900_000 }, async () => {
  const lines = (await edgeauth(['rule', 'keygen', '--kid', 'kit1'])).stdout.split('\n').filter((l) => l && !l.startsWith('#'));
  const [secret, pub] = lines;
  const built = await edgeauth(['rule', 'build', '.', '--name', 'welcome-rule'], { cwd: crate, env: { EDGEAUTH_RULE_SIGNING_KEY: secret } });
  assert.equal(built.code, 0, built.stderr);
  const artifact = path.join(crate, 'welcome-rule.rule');
  assert.ok(fs.existsSync(artifact), built.stdout);

  stack = await startStack({
    gatewayOptions: {
      vars: {
        rules: fs.readFileSync(path.join(crate, 'rules.json'), 'utf8'),
        rule_keys: pub,
        admin_token: ADMIN_TOKEN,
      },
    },
  });
  const [gw] = stack.gateways;
  const up = await edgeauth(['rule', 'upload', artifact, '--gateway', gw.url], { env: { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN } });
  assert.equal(up.code, 0, up.stderr);

  const jar = new CookieJar();
  await loginOk(gw, stack.idp, jar, '/kit');
  assert.equal((await request(`${gw.url}/kit`, { jar })).status, 200);
  const seen = await originSaw(stack.origin, '/kit');
  assert.ok(seen.length, 'the origin got the signed-in request');
  const { payload } = await verifyAssertion(gw, stack.origin.url, seen.at(-1).headers['x-edgeauth-assertion']);
  assert.equal(payload['https://example.com/login_count'], 1, JSON.stringify(payload));
});

test('a new JavaScript rule passes its own node tests as made, fails them when broken, and runs built', { timeout: 900_000 }, async () => {
  const started = Date.now();
  for (const l of await jsTemplate()) console.log(`# ${l}`);
  const warm = Date.now() - started;

  const refused = await edgeauth(['rule', 'new', 'x', '--lang', 'python', '--dir', path.join(tmp, 'x')]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /--lang "python": the templates are `rust` \(the default\) and `js`/);
  assert.ok(!fs.existsSync(path.join(tmp, 'x')), 'nothing written');

  const dir = path.join(tmp, TEMPLATE_JS);
  const made = await edgeauth(['rule', 'new', TEMPLATE_JS, '--lang', 'js', '--dir', dir]);
  assert.equal(made.code, 0, made.stderr);
  assert.match(made.stdout, /created JavaScript rule `hello-js`/);
  for (const f of fs.readdirSync(FIXTURES)) assert.ok(fs.existsSync(path.join(dir, 'fixtures', f)), `fixture ${f} shipped`);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const repoPkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const pin = '@bytecodealliance/componentize-js';
  assert.equal(pkg.devDependencies[pin], repoPkg.devDependencies[pin], 'componentize-js pinned as the repository pins it');
  assert.equal(fs.realpathSync(path.join(dir, 'sdk')), path.join(ROOT, 'plugins/sdk-js'));

  // Its tests, as a tenant runs them: plain `node --test`, no Wasm build.
  // (Without NODE_TEST_CONTEXT: set for this file's own runner, it would make
  // the nested runner report to ours instead of printing.)
  const tenantEnv = { ...process.env };
  delete tenantEnv.NODE_TEST_CONTEXT;
  const nodeTest = () => run(process.execPath, ['--test'], { cwd: dir, env: tenantEnv, encoding: 'utf8' })
    .then((r) => ({ code: 0, out: r.stdout }), (e) => ({ code: e.code, out: `${e.stdout}${e.stderr}` }));
  const passed = await nodeTest();
  assert.equal(passed.code, 0, passed.out);
  assert.match(passed.out, /^# pass 3$/m);
  assert.match(passed.out, /^# fail 0$/m);

  // ...which fail when the rule is wrong (here: an off-by-one count).
  const source = fs.readFileSync(path.join(dir, 'rule.js'), 'utf8');
  const broken = source.replace('login.transaction.loginCount + 1', 'login.transaction.loginCount');
  assert.notEqual(broken, source);
  fs.writeFileSync(path.join(dir, 'rule.js'), broken);
  const failed = await nodeTest();
  assert.notEqual(failed.code, 0, failed.out);
  assert.match(failed.out, /^# fail 2$/m);
  fs.writeFileSync(path.join(dir, 'rule.js'), source);

  // `rule test DIR` builds it (sdk/build.mjs) and runs the component as a
  // sign-in would: the same commands as the Rust template's.
  const t = Date.now();
  const first = await edgeauth(['rule', 'test', '.', '--event', path.join(FIXTURES, 'first-login.json'), '--now', '2026-12-07T09:30:00Z'],
    { cwd: dir, env: { EDGEAUTH_CACHE_DIR: HOST_CACHE } });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stderr, /\(cached\)/, 'built from the prebuilt cache');
  assert.match(first.stderr, /built .*hello-js\.wasm/);
  assert.match(first.stderr, /rule `hello-js` OK: 2 command\(s\)/);
  assert.deepEqual(JSON.parse(first.stdout), [
    { command: 'patch-app-metadata', patch: { first_login_ms: Date.parse('2026-12-07T09:30:00Z') } },
    { command: 'set-claim', name: 'https://example.com/login_count', value: 1 },
  ]);
  console.log(`# JS template: prebuild check ${warm} ms, rule test (build + run, cached) ${Date.now() - t} ms`);

  // What a JS build needs is named when it is missing: node, then
  // componentize-js (here an SDK copied out of the repository, with no
  // node_modules above it, and no install in the rule's directory).
  const noNode = await edgeauth(['rule', 'validate', dir], { env: { PATH: '/nonexistent' } });
  assert.notEqual(noNode.code, 0);
  assert.match(noNode.stderr, /cannot run node .*Node\.js/);
  const repo = path.join(tmp, 'repo-copy');
  fs.cpSync(path.join(ROOT, 'plugins/sdk-js'), path.join(repo, 'plugins/sdk-js'), { recursive: true });
  fs.cpSync(path.join(ROOT, 'wit'), path.join(repo, 'wit'), { recursive: true });
  const bare = path.join(tmp, 'no-deps');
  const madeBare = await edgeauth(['rule', 'new', 'no-deps', '--lang', 'js', '--dir', bare, '--sdk', path.join(repo, 'plugins/sdk-js')]);
  assert.equal(madeBare.code, 0, madeBare.stderr);
  const noDeps = await edgeauth(['rule', 'validate', bare], { env: { EDGEAUTH_CACHE_DIR: path.join(tmp, 'empty-cache') } });
  assert.notEqual(noDeps.code, 0);
  assert.match(noDeps.stderr, /componentize-js is not installed: run `npm install` in .*no-deps/);
  assert.match(noDeps.stderr, /the JavaScript build of `no-deps` failed/);
});
