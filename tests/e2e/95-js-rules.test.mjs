// JavaScript tenant rules (plugins/sdk-js, plugins/examples-js): built by the
// JS component toolchain (componentize-js, every WASI feature off), signed by
// `edgeauth rule build`, uploaded, and run by the gateway's own embedded
// runtime, under the host and under Spin:
// - the same conformance tables (plugins/examples/*/conformance.json) give
//   the same commands from the Rust and the JavaScript version of each
//   example, through the admin dry run (the gateway's runtime, caps and
//   command checks);
// - a JS rule allows and denies real sign-ins;
// - a memory cap too small for the JS engine fails clearly;
// - the SDK's typings are what wit/plugin.wit gives.
//
// Needs the JS rules built (tests/lib/js-rules.mjs; scripts/test runs it
// first, cached) and the Rust examples (cargo build --release --target
// wasm32-unknown-unknown -p rule-email-domain -p rule-progressive-profile).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { ROOT, freePort, waitFor } from '../lib/procs.mjs';
import { edgeauthCli, startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, show, login, loginOk } from '../lib/gateway-flow.mjs';
import { jsRules } from '../lib/js-rules.mjs';
import { drift } from '../../plugins/sdk-js/gen-types.mjs';
import * as commands from '../../plugins/sdk-js/commands.js';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const rustWasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);
const { cli, cliFails } = edgeauthCli();

// The examples: table, the Rust crate, the chain names of both versions.
const EXAMPLES = {
  'email-domain': { crate: 'email_domain', rs: 'email-domain-rs', js: 'email-domain-js' },
  'progressive-profile': { crate: 'progressive_profile', rs: 'profile-rs', js: 'profile-js' },
};
const table = (example) => JSON.parse(fs.readFileSync(path.join(ROOT, 'plugins/examples', example, 'conformance.json'), 'utf8'));

let stack;
let tmp;
let built; // jsRules()
const art = {}; // chain name -> artifact
let gwConf; // one tenant per (example, config) of the tables
let gwLogin; // the JS email-domain rule on real sign-ins
let gwSmall; // the JS rule under a memory cap too small for its engine
const tenantsOf = {}; // example -> [{ tenant, config }]

const dryRun = async (gw, tenant, event) => {
  const r = await request(`${gw.url}/.edgeauth/admin/rules/${tenant}/_run`, {
    method: 'POST', body: JSON.stringify(event), accept: 'application/json',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
  });
  assert.equal(r.status, 200, show(r));
  return JSON.parse(r.body);
};

const upload = (gw, name, tenant = 'default') =>
  cli(['rule', 'upload', art[name], '--gateway', gw.url, '--tenant', tenant], { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN });

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-js-rules-'));
  built = await jsRules();
  for (const l of built.log) console.log(`# ${l}`);
  Object.assign(art, built.rule);
  for (const ex of Object.values(EXAMPLES)) {
    art[ex.rs] = path.join(tmp, `${ex.rs}.rule`);
    await cli(['rule', 'build', rustWasm(ex.crate), '--name', ex.rs, '-o', art[ex.rs]], { EDGEAUTH_RULE_SIGNING_KEY: built.key.secret });
  }

  // The conformance gateway: a tenant per distinct config of each table (a
  // rule's config comes from its chain entry), each chain [Rust, JS].
  // The admin endpoints are reached on the gateway's own address: that host is a tenant too.
  const confPort = await freePort('127.0.0.1');
  const tenants = { admin: { public_url: `http://127.0.0.1:${confPort}` } };
  const rules = {};
  for (const [example, ex] of Object.entries(EXAMPLES)) {
    const t = table(example);
    const configs = [...new Set(t.cases.map((c) => JSON.stringify(c.config ?? t.config)))];
    tenantsOf[example] = configs.map((config, i) => ({ tenant: `${ex.rs.replace('-rs', '')}-${i}`, config }));
    for (const { tenant, config } of tenantsOf[example]) {
      tenants[tenant] = { public_url: `http://${tenant}.conformance.test` };
      rules[tenant] = { chain: [ex.rs, ex.js].map((name) => ({ name, source: `file:/rules/${name}.rule`, config: JSON.parse(config), fail_open: true })) };
    }
  }
  const common = { rule_keys: built.key.public, admin_token: ADMIN_TOKEN };
  // (fail_open: a failing Rust rule must not stop the chain before its JS
  // twin runs; the dry run reports each one's failure all the same.)
  // The conformance gateway ships the artifacts as files (Spin `files`), one
  // copy for all its tenants: uploading ~28 MB per tenant would take most of
  // this file's time. Uploads are what gwLogin uses.
  const app = path.join(tmp, 'app');
  fs.mkdirSync(path.join(app, 'rules'), { recursive: true });
  for (const ex of Object.values(EXAMPLES)) {
    for (const name of [ex.rs, ex.js]) fs.copyFileSync(art[name], path.join(app, 'rules', `${name}.rule`));
  }
  const manifest = fs.readFileSync(path.join(ROOT, 'spin.toml'), 'utf8')
    .replace('key_value_stores = ["default"]', 'key_value_stores = ["default"]\nfiles = [{ source = "rules", destination = "/rules" }]');
  fs.writeFileSync(path.join(app, 'spin.toml'), manifest);
  stack = await startStack({
    gateways: 3,
    gatewayOptions: { port: confPort, manifest: path.join(app, 'spin.toml'), vars: { ...common, tenants: JSON.stringify(tenants), rules: JSON.stringify({ tenants: rules }) } },
  });
  gwConf = stack.gateway;
  gwLogin = await stack.startGateway({
    vars: { ...common, rules: JSON.stringify({ tenants: { default: { chain: [{ name: 'email-domain-js', config: { domains: ['example.com'] } }] } } }) },
  });
  gwSmall = await stack.startGateway({
    vars: { ...common, rules: JSON.stringify({ tenants: { default: { chain: [{ name: 'email-domain-js', config: { domains: ['example.com'] }, memory_bytes: 8 << 20 }] } } }) },
  });
  const t = Date.now();
  await upload(gwLogin, 'email-domain-js');
  console.log(`# upload of the JS artifact (${fs.statSync(art['email-domain-js']).size} bytes): ${Date.now() - t} ms`);
});

after(async () => {
  await stopStack(stack);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('the SDK typings are generated from wit/plugin.wit, unchanged', async () => {
  assert.deepEqual(await drift(), []);
});

test("the SDK's command helpers make exactly the WIT's command cases, with its field names", () => {
  // The generated typings (checked above against the WIT) are the reference.
  const dts = fs.readFileSync(path.join(ROOT, 'plugins/sdk-js/types/interfaces/edgeauth-plugin-types.d.ts'), 'utf8');
  const records = {};
  for (const m of dts.matchAll(/export interface (\w+) \{([^}]*)\}/g)) {
    const fields = {};
    for (const f of m[2].replace(/\/\*\*[\s\S]*?\*\//g, '').matchAll(/(\w+)(\??):\s*([^,]+),/g)) fields[f[1]] = { optional: f[2] === '?', type: f[3].trim() };
    records[m[1]] = fields;
  }
  const cases = Object.fromEntries(Object.entries(records)
    .filter(([name, f]) => name.startsWith('Command') && f.tag)
    .map(([, f]) => [f.tag.type.replace(/'/g, ''), f.val.type]));
  assert.ok(Object.keys(cases).length >= 8, `parsed the typings: ${JSON.stringify(cases)}`);
  const made = [
    commands.deny('no'), commands.setClaim('https://example.com/x', [1]), commands.setHeader('x-team', 'a'),
    commands.patchAppMetadata({ a: 1 }), commands.patchUserMetadata({ b: 2 }), commands.redirect('/form'),
    commands.requireReauth({ promptLogin: true, maxAge: 60 }), commands.logCommand('info', 'hi'),
  ];
  assert.deepEqual(made.map((c) => c.tag).sort(), Object.keys(cases).sort(), 'one helper per command case, no other');
  for (const c of made) {
    const type = cases[c.tag];
    if (type === 'string' || type === 'Json') {
      assert.equal(typeof c.val, 'string', c.tag);
      continue;
    }
    const fields = records[type];
    assert.ok(fields, `${c.tag}: record ${type} in the typings`);
    for (const k of Object.keys(c.val)) assert.ok(k in fields, `${c.tag}: field ${k} is not in ${type} (${Object.keys(fields)})`);
    for (const [k, f] of Object.entries(fields)) if (!f.optional) assert.ok(c.val[k] !== undefined, `${c.tag}: ${type}.${k} is missing`);
  }
  // JSON fields are JSON text.
  assert.deepEqual(JSON.parse(commands.setClaim('https://example.com/x', { a: [1] }).val.value), { a: [1] });
});

test('the SDK gives a rule the host\'s clock and randomness, parsed JSON fields, and errors instead of traps', async () => {
  // Under Node with a stand-in host (the SDK replaces globals: its own process).
  // (testing.mjs: the host stand-in a rule's own tests use, e.g. `rule new --lang js`'s.)
  const { stdout } = await run(process.execPath, ['plugins/sdk-js/sdk-check.mjs'], { cwd: ROOT, encoding: 'utf8' });
  const out = JSON.parse(stdout);
  // Not the engine's clock (frozen at the build's snapshot without WASI): the host's.
  assert.equal(out.dateNow, 1796000000123);
  assert.equal(out.newDate, 1796000000123);
  assert.equal(out.epoch, '1970-01-01T00:00:00.000Z');
  assert.equal(out.parsed, Date.UTC(2020, 0, 2, 3, 4, 5));
  assert.equal(out.isDate, true);
  // 53 bits from the host's random bytes 1..7, then 8..14.
  const expect = (b) => (((b[0] << 13) | (b[1] << 5) | (b[2] >> 3)) * 2 ** 32 + (((b[3] << 24) | (b[4] << 16) | (b[5] << 8) | b[6]) >>> 0)) / 2 ** 53;
  assert.deepEqual(out.random, [expect([1, 2, 3, 4, 5, 6, 7]), expect([8, 9, 10, 11, 12, 13, 14])]);
  assert.deepEqual(out.getRandomValues, [1, 2, 3]);
  assert.equal(out.big, 2500, 'more than one host call of 1024 bytes');
  assert.deepEqual(out.commands, [{ tag: 'deny', val: 'no' }]);
  assert.deepEqual(out.seen, { config: { x: 1 }, domain: 'example.com', count: 3, meta: { company: 'Acme' }, profile: { p: 2 }, resumed: 'Beta', secret: 'v' });
  // Thrown as strings: componentize-js makes them the export's `err` (a thrown Error object would trap).
  assert.equal(out.throwsError, 'TypeError: bad domain');
  assert.equal(out.throwsString, 'plain');
  assert.equal(out.notArray, 'the rule returned string, not an array of commands');
  // testing.mjs lowers an event file as the gateway does: defaults, JSON fields as text, secrets by name.
  assert.deepEqual(out.lowered.connection, { id: 'default', kind: 'saml', displayName: 'Identity provider' });
  assert.equal(out.lowered.user.appMetadata, '{"a":1}');
  assert.equal(out.lowered.user.userMetadata, '{}');
  assert.equal(out.lowered.transaction.loginCount, '4');
  assert.deepEqual(out.lowered.secrets, [{ name: 'a', value: '1' }, { name: 'b', value: '2' }]);
  assert.match(out.typo, /unknown field user\.emailVerified/);
  // ...and runs a rule on it with its clock and captured log.
  assert.deepEqual(out.run, { commands: [commands.setClaim('https://example.com/now', 5)], logs: ['info: hello u'] });
});

test('a JS rule is signed like a Rust rule; a component importing WASI is refused, naming the JS build options', async () => {
  // (`rule build` validated it: tests/lib/js-rules.mjs. Not validated again
  // here: compiling the ~9 MB engine takes the debug host minutes.)
  const header = JSON.parse((await cli(['rule', 'inspect', art['email-domain-js']])).split('\ncode:')[0]);
  assert.equal(header.name, 'email-domain-js');
  // A component importing WASI (as componentize-js makes by default) is refused, saying how to build it.
  const wasi = path.join(TARGET, 'wasm32-wasip2', 'release', 'edgeauth_component.wasm');
  assert.match(await cliFails(['rule', 'validate', wasi]), /imports wasi:.*--disable stdio random clocks http fetch-event/s);
});

for (const example of Object.keys(EXAMPLES)) {
  test(`conformance: ${example}, Rust and JavaScript give the table's commands`, async () => {
    const ex = EXAMPLES[example];
    const t = table(example);
    for (const c of t.cases) {
      const config = JSON.stringify(c.config ?? t.config);
      const { tenant } = tenantsOf[example].find((x) => x.config === config);
      const res = await dryRun(gwConf, tenant, c.event);
      for (const name of [ex.rs, ex.js]) {
        const got = res.results.find((r) => r.rule === name);
        assert.ok(got, `${c.name}: ${name} did not run: ${JSON.stringify(res.results)}`);
        if (c.failure) {
          assert.equal(got.failure, c.failure, `${c.name} (${name}): ${JSON.stringify(got)}`);
        } else {
          assert.deepEqual(got.commands, c.commands, `${c.name} (${name}): ${JSON.stringify(got)}`);
        }
      }
    }
  });
}

test('a JS rule on real sign-ins: alice (verified, example.com) passes, unverified bob gets the deny page', async () => {
  const jar = new CookieJar();
  await loginOk(gwLogin, stack.idp, jar, '/js-app');
  assert.equal((await request(`${gwLogin.url}/js-app`, { jar })).status, 200);
  const bob = await login(gwLogin, stack.idp, new CookieJar(), '/js-app', { username: 'bob' });
  assert.equal(bob.callback.status, 403, show(bob.callback));
  assert.match(bob.callback.body, /Access denied/);
  assert.match(bob.callback.body, /a verified email address is required/);
  assert.ok(!setCookie(bob.callback, SESSION) || isClearing(setCookie(bob.callback, SESSION)), 'no session for a denied sign-in');
  await waitFor(() => /"event":"login-denied","rule":"email-domain-js"/.test(gwLogin.proc.output), { what: 'audit line' });
});

test('a memory cap too small for the JS engine fails the sign-in closed, the detail naming memory_bytes', async () => {
  await upload(gwSmall, 'email-domain-js');
  const res = await dryRun(gwSmall, 'default', { user: { sub: 'alice', email: 'alice@example.com', email_verified: true } });
  const [got] = res.results;
  assert.equal(got.failure, 'out-of-memory', JSON.stringify(got));
  assert.match(got.detail, /memory_bytes is 8388608 and it needs more than \d+ bytes to start/);
  const l = await login(gwSmall, stack.idp, new CookieJar(), '/js-small');
  assert.equal(l.callback.status, 500, show(l.callback));
  assert.match(l.callback.body, /it exceeded its memory cap/);
  await waitFor(() => /"detail":"[^"]*memory_bytes is 8388608[^"]*","event":"login-failed","kind":"out-of-memory","rule":"email-domain-js"/.test(gwSmall.proc.output),
    { what: 'audit line naming memory_bytes' });
});
