// Tenant post-login rules (wit/plugin.wit) through the real host + IdP:
// the tooling (`edgeauth rule keygen/validate/build/run/upload`), the four
// example rules' effects at the origin and in the browser flow, hostile rules
// failing closed while a concurrent normal sign-in succeeds, and artifacts
// that are unsigned or tampered, in storage too (uploads are stored bound
// with the gateway's MAC, which sign-ins check instead of the signature).
//
// Needs the rules built: cargo build --release --target wasm32-unknown-unknown
// -p rule-email-domain -p rule-group-roles -p rule-progressive-profile -p rule-crm-lead -p rule-hostile
// (scripts/test does it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';
import { edgeauthCli, startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, show, login, loginOk, verifyAssertion, originSaw } from '../lib/gateway-flow.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { readKv, writeKv } from '../lib/kv.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const CRM_SECRET = 'crm-' + crypto.randomBytes(6).toString('hex');

let stack;
let tmp;
let key; // { secret, public }
const art = {}; // rule name -> artifact path

const { cli, cliFails } = edgeauthCli();

async function build(crate, name) {
  const out = path.join(tmp, `${name}.rule`);
  await cli(['rule', 'build', wasm(crate), '--name', name, '-o', out], { EDGEAUTH_RULE_SIGNING_KEY: key.secret });
  art[name] = out;
  return out;
}

const rulesVar = (chain) => JSON.stringify({ tenants: { default: { chain } } });

function ruleVars(chain, extra = {}) {
  return {
    rules: rulesVar(chain),
    rule_keys: key.public,
    admin_token: ADMIN_TOKEN,
    rule_secrets: JSON.stringify({ default: { crm_token: CRM_SECRET } }),
    ...extra,
  };
}

async function upload(gw, name, file = art[name]) {
  return cli(['rule', 'upload', file, '--gateway', gw.url], { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN });
}

async function admin(gw, method, p, body) {
  return request(`${gw.url}/.edgeauth/admin/rules/${p}`, {
    method, body, accept: 'application/json',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/octet-stream' },
  });
}

async function profileAdmin(gw, method, id, body) {
  return request(`${gw.url}/.edgeauth/admin/profiles/default/${id}`, {
    method, body: body === undefined ? undefined : JSON.stringify(body), accept: 'application/json',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
  });
}

/** The assertion the origin received on the last request to `p`. */
async function lastAssertion(gw, p) {
  const seen = await originSaw(stack.origin, p);
  assert.ok(seen.length, `origin saw no request for ${p}`);
  const last = seen[seen.length - 1];
  return { headers: last.headers, claims: (await verifyAssertion(gw, stack.origin.url, last.headers['x-edgeauth-assertion'])).payload };
}

let gwExamples; let gwHostile; let gwStore; let gwSlow; let gwFiles;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-rules-'));
  const lines = (await cli(['rule', 'keygen', '--kid', 'test1'])).split('\n').filter((l) => l && !l.startsWith('#'));
  key = { secret: lines[0], public: lines[1] };
  await build('email_domain', 'email-domain');
  await build('group_roles', 'group-roles');
  await build('progressive_profile', 'profile');
  await build('crm_lead', 'crm-lead');
  for (const mode of ['loop', 'alloc', 'trap', 'panic', 'huge', 'forbidden', 'error', 'bad-claim', 'reauth', 'open']) await build('hostile', `h-${mode}`);

  stack = await startStack({
    gateways: 10, // 7 here, 3 for the bound-artifact test
    idpEnv: { IDP_EXTRA_USERS: JSON.stringify({ carol: { password: 'carol-pw', claims: { email: 'carol@example.com', email_verified: true, name: 'Carol' } } }) },
  });
  const o = stack.origin.url;
  gwExamples = await stack.startGateway({
    vars: ruleVars([
      { name: 'email-domain', config: { domains: ['example.com'] } },
      { name: 'group-roles', config: { roles: { admins: ['admin'], devs: ['developer'] }, claim: 'https://example.com/roles', header: 'x-roles' }, headers: ['x-roles'] },
      { name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 2 } },
      { name: 'crm-lead', config: { webhook: `${o}/__webhook` }, allowed_hosts: [o], secrets: ['crm_token'] },
    ], { routes: JSON.stringify([{ path: '/profile-form', public: true }]) }),
  });
  const mode = (m, extra = {}) => ({ name: `h-${m}`, config: { mode: m === 'forbidden' ? 'forbidden-host' : m, path: `/h/${m}` }, ...extra });
  gwHostile = await stack.startGateway({
    vars: ruleVars([
      mode('loop', { fuel: 20000000 }),
      mode('alloc', { memory_bytes: 8 << 20 }),
      mode('trap'),
      mode('panic'),
      mode('huge'),
      mode('forbidden', { allowed_hosts: [o] }),
      mode('error'),
      mode('bad-claim'),
      mode('reauth'),
      { name: 'h-open', config: { mode: 'trap', path: '/h/open' }, fail_open: true },
    ]),
  });
  // A store whose artifact was tampered with after upload.
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-'));
  const bytes = fs.readFileSync(art['email-domain']);
  bytes[bytes.length - 100] ^= 0x01;
  writeKv(stateDir, { 'rule-artifact:default:email-domain': bytes.toString('base64') });
  gwStore = await stack.startGateway({
    stateDir,
    vars: ruleVars([{ name: 'email-domain', config: { domains: ['example.com'] } }]),
  });
  gwSlow = await stack.startGateway({
    vars: ruleVars([{ name: 'crm-lead', config: { webhook: `${o}/__slow?ms=8000`, timeout_ms: 400 }, allowed_hosts: [o], secrets: ['crm_token'] }]),
  });
  // An app that ships its rule artifact as a file (Spin `files`), no KV upload.
  const app = path.join(tmp, 'app');
  fs.mkdirSync(path.join(app, 'rules'), { recursive: true });
  fs.copyFileSync(art['email-domain'], path.join(app, 'rules', 'email-domain.rule'));
  const manifest = fs.readFileSync(path.join(ROOT, 'spin.toml'), 'utf8')
    .replace('key_value_stores = ["default"]', 'key_value_stores = ["default"]\nfiles = [{ source = "rules", destination = "/rules" }]');
  fs.writeFileSync(path.join(app, 'spin.toml'), manifest);
  gwFiles = await stack.startGateway({
    manifest: path.join(app, 'spin.toml'),
    vars: ruleVars([{ name: 'email-domain', source: 'file:/rules/email-domain.rule', config: { domains: ['example.com'] } }]),
  });
  for (const n of ['email-domain', 'group-roles', 'profile', 'crm-lead']) await upload(gwExamples, n);
  for (const m of ['loop', 'alloc', 'trap', 'panic', 'huge', 'forbidden', 'error', 'bad-claim', 'reauth', 'open']) await upload(gwHostile, `h-${m}`);
  await upload(gwSlow, 'crm-lead');
});

after(async () => {
  await stopStack(stack);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('tooling: validate, inspect, run against an event file', async () => {
  assert.match(await cli(['rule', 'validate', wasm('email_domain')]), /OK, implements edgeauth:plugin@0\.1\.0/);
  // A WASI program is not a rule.
  const notRule = path.join(TARGET, 'wasm32-wasip2', 'release', 'edgeauth_component.wasm');
  assert.match(await cliFails(['rule', 'validate', notRule]), /not a valid rule|imports/);
  const header = JSON.parse((await cli(['rule', 'inspect', art['group-roles']])).split('\ncode:')[0]);
  assert.equal(header.name, 'group-roles');
  assert.equal(header.kid, 'test1');
  assert.match(header.runtime, /pulley32/);

  const event = path.join(tmp, 'event.json');
  fs.writeFileSync(event, JSON.stringify({ user: { sub: 'u', groups: ['admins'] }, config: { roles: { admins: ['admin'] }, header: 'x-roles' } }));
  const rules = path.join(tmp, 'rules.json');
  fs.writeFileSync(rules, rulesVar([{ name: 'group-roles', config: { roles: { admins: ['admin'] }, header: 'x-roles' }, headers: ['x-roles'] }]));
  const out = JSON.parse(await cli(['rule', 'run', wasm('group_roles'), '--event', event, '--rules', rules, '--name', 'group-roles']));
  assert.deepEqual(out, [
    { command: 'set-claim', name: 'https://example.com/roles', value: ['admin'] },
    { command: 'set-header', name: 'x-roles', value: 'admin' },
  ]);
  // Same budgets and checks as the gateway: the header is not allowed without --rules granting it.
  assert.match(await cliFails(['rule', 'run', wasm('group_roles'), '--event', event]), /bad-output.*x-roles/s);
  fs.writeFileSync(event, JSON.stringify({ config: { mode: 'loop' } }));
  assert.match(await cliFails(['rule', 'run', wasm('hostile'), '--event', event]), /out-of-fuel/);
});

test('no rules configured: the gateway behaves as before', async () => {
  const gw = stack.gateway;
  const l = await loginOk(gw, stack.idp, new CookieJar(), '/plain');
  assert.ok(!setCookie(l.callback, 'edgeauth_resume'));
  const r = await request(`${gw.url}/.edgeauth/admin/rules/default`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(r.status, 404, 'admin endpoints are off without admin_token');
  assert.equal((await request(`${gw.url}/.edgeauth/continue?state=x`)).status, 404);
});

test('(a) verified email at an allowed domain: alice passes, unverified bob gets the deny page', async () => {
  const bob = await login(gwExamples, stack.idp, new CookieJar(), '/app', { username: 'bob' });
  assert.equal(bob.callback.status, 403, show(bob.callback));
  assert.match(bob.callback.body, /Access denied/);
  assert.match(bob.callback.body, /email-domain/);
  assert.match(bob.callback.body, /a verified email address is required/);
  assert.ok(!setCookie(bob.callback, SESSION) || isClearing(setCookie(bob.callback, SESSION)), 'no session for a denied sign-in');
  await waitFor(() => /"event":"login-denied","rule":"email-domain"/.test(gwExamples.proc.output), { what: 'audit line' });
});

test('(b)+(d) groups become a roles claim and header; first sign-in posts a lead to the CRM webhook', async () => {
  const jar = new CookieJar();
  const l = await loginOk(gwExamples, stack.idp, jar, '/roles-check');
  const r = await request(`${gwExamples.url}/roles-check`, { jar, headers: { 'x-roles': 'forged-by-client' } });
  assert.equal(r.status, 200, show(r));
  const { headers, claims } = await lastAssertion(gwExamples, '/roles-check');
  assert.equal(headers['x-roles'], 'admin,developer');
  assert.deepEqual(claims['https://example.com/roles'], ['admin', 'developer']);
  assert.equal(claims.sub, 'alice');
  void l;
  // A client cannot supply the rule's header on a path without session either.
  const pub = await request(`${gwExamples.url}/profile-form`, { headers: { 'x-roles': 'admin' } });
  assert.equal(pub.status, 200);
  const form = (await originSaw(stack.origin, '/profile-form')).pop();
  assert.equal(form.headers['x-roles'], undefined);

  const hooks = await originSaw(stack.origin, '/__webhook');
  assert.equal(hooks.length, 1, 'one lead for the first sign-in');
  assert.equal(hooks[0].method, 'POST');
  assert.equal(hooks[0].headers['x-webhook-secret'], CRM_SECRET);
  const lead = JSON.parse(hooks[0].body);
  assert.equal(lead.sub, 'alice');
  assert.equal(lead.event, 'first_login');
});

test('(c) progressive profiling: the second sign-in asks for the company, stores it, the third does not ask', async () => {
  // (alice signed in once in the previous test; make sure of it if run alone)
  if (!(await originSaw(stack.origin, '/__webhook')).length) await loginOk(gwExamples, stack.idp, new CookieJar(), '/first');
  const jar = new CookieJar();
  const l = await login(gwExamples, stack.idp, jar, '/after-profile?x=1');
  assert.equal(l.callback.status, 302, show(l.callback));
  const form = new URL(l.callback.location);
  assert.equal(form.origin, gwExamples.url);
  assert.equal(form.pathname, '/profile-form');
  assert.ok(form.searchParams.get('state'), 'signed state in the redirect');
  assert.ok(!setCookie(l.callback, SESSION), 'no session before the form is answered');
  const page = await request(form.href, { jar });
  assert.equal(page.status, 200);
  assert.match(page.body, /id="profile"/);
  const state = page.body.match(/name="state" value="([^"]+)"/)[1].replace(/&amp;/g, '&');

  // Tampered state, and the right state from another browser: refused.
  assert.equal((await request(`${gwExamples.url}/.edgeauth/continue?state=${encodeURIComponent(state.slice(0, -4) + 'AAAA')}&company=X`, { jar })).status, 400);
  assert.equal((await request(`${gwExamples.url}/.edgeauth/continue?state=${encodeURIComponent(state)}&company=X`, { jar: new CookieJar() })).status, 400);
  // An empty answer asks again.
  const empty = await request(`${gwExamples.url}/.edgeauth/continue?state=${encodeURIComponent(state)}&company=`, { jar });
  assert.equal(empty.status, 302, show(empty));
  assert.match(empty.location, /\/profile-form\?.*retry=1/);
  const state2 = new URL(empty.location).searchParams.get('state');
  const done = await request(`${gwExamples.url}/.edgeauth/continue?state=${encodeURIComponent(state2)}&company=${encodeURIComponent('Acme Corp')}`, { jar });
  assert.equal(done.status, 302, show(done));
  assert.equal(new URL(done.location).pathname + new URL(done.location).search, '/after-profile?x=1');
  assert.ok(setCookie(done, SESSION) && !isClearing(setCookie(done, SESSION)));
  const ok = await request(done.location, { jar });
  assert.equal(ok.status, 200);
  const { headers } = await lastAssertion(gwExamples, '/after-profile');
  assert.equal(headers['x-roles'], 'admin,developer', 'rules after the paused one ran too');
  // Single use.
  assert.equal((await request(`${gwExamples.url}/.edgeauth/continue?state=${encodeURIComponent(state2)}&company=Y`, { jar })).status, 400);
  // Third sign-in: the company is known, nothing asked.
  const thirdJar = new CookieJar();
  const third = await loginOk(gwExamples, stack.idp, thirdJar, '/third');
  assert.equal(new URL(third.callback.location).pathname, '/third');
  assert.equal((await originSaw(stack.origin, '/__webhook')).length, 1, 'the CRM lead is for the first sign-in only');

  // What the rule stored is the person's profile: the admin API shows it,
  // and an operator's correction is what the rule sees at the next sign-in.
  assert.equal((await request(`${gwExamples.url}/third`, { jar: thirdJar })).status, 200);
  const profileId = (await originSaw(stack.origin, '/third')).pop().headers['x-auth-request-profile'];
  assert.match(profileId ?? '', /^p_[a-z2-7]{26}$/);
  const profile = await profileAdmin(gwExamples, 'GET', profileId);
  assert.equal(profile.status, 200, profile.body);
  assert.equal(JSON.parse(profile.body).user_metadata.company, 'Acme Corp');
  assert.equal(JSON.parse(profile.body).logins, 3);
  const patched = await profileAdmin(gwExamples, 'PATCH', profileId, { user_metadata: { company: null } });
  assert.equal(patched.status, 200, patched.body);
  const fourth = await login(gwExamples, stack.idp, new CookieJar(), '/fourth');
  assert.equal(new URL(fourth.callback.location).pathname, '/profile-form', 'the rule asks again once the company is erased');
});

test('metadata a rule kept before profiles existed carries over into the new profile', async () => {
  // The record the rules kept per subject before profiles (KV `rule-user`),
  // for a person with no profile yet: carol, who signed in before the upgrade.
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-'));
  const hashed = crypto.createHash('sha256').update('carol').digest('base64url');
  const legacy = `${Math.floor(Date.now() / 1000) + 86400} ${JSON.stringify({ logins: 4, app: { plan: 'gold' }, user: { company: 'Initech' } })}`;
  writeKv(stateDir, { [`rule-user:default:${hashed}`]: Buffer.from(legacy).toString('base64') });
  const gw = await stack.startGateway({
    stateDir,
    vars: ruleVars([{ name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 1 } }]),
  });
  await upload(gw, 'profile');
  const jar = new CookieJar();
  const l = await loginOk(gw, stack.idp, jar, '/carol', { username: 'carol', password: 'carol-pw' });
  assert.equal(new URL(l.callback.location).pathname, '/carol', 'the company is known: not asked');
  assert.equal((await request(`${gw.url}/carol`, { jar })).status, 200);
  const profileId = (await originSaw(stack.origin, '/carol')).pop().headers['x-auth-request-profile'];
  const profile = JSON.parse((await profileAdmin(gw, 'GET', profileId)).body);
  assert.deepEqual([profile.app_metadata, profile.user_metadata], [{ plan: 'gold' }, { company: 'Initech' }]);
});

test('(d) a slow webhook does not block the sign-in (bounded timeout)', async () => {
  const started = Date.now();
  const l = await loginOk(gwSlow, stack.idp, new CookieJar(), '/slow');
  const took = Date.now() - started;
  assert.equal(new URL(l.callback.location).pathname, '/slow');
  assert.ok(took < 6000, `sign-in took ${took} ms with an 8 s webhook`);
  await waitFor(() => /CRM webhook (timed out|failed)/.test(gwSlow.proc.output), { what: 'rule log line' });
});

// The page names the failure's class and a log reference; the detail (a
// trap's message, the refused claim) goes only to the audit line.
const hostile = [
  ['loop', /CPU budget/, 'out-of-fuel'],
  ['alloc', /memory cap/, 'out-of-memory'],
  ['trap', /crashed/, 'trap'],
  ['panic', /crashed/, 'trap'],
  ['huge', /output was refused/, 'bad-output'],
  ['forbidden', /not in its allow list/, 'forbidden-host'],
  ['error', /returned an error/, 'error'],
  ['bad-claim', /output was refused/, 'bad-output'],
];

for (const [m, page, kind] of hostile) {
  test(`hostile rule (${m}) fails closed while a concurrent normal sign-in succeeds`, async () => {
    const [bad, good] = await Promise.all([
      login(gwHostile, stack.idp, new CookieJar(), '/', { rd: `/h/${m}` }),
      loginOk(gwHostile, stack.idp, new CookieJar(), '/fine'),
    ]);
    assert.equal(bad.callback.status, 500, show(bad.callback));
    assert.match(bad.callback.body, /Sign-in failed/);
    assert.match(bad.callback.body, new RegExp(`h-${m}`));
    assert.match(bad.callback.body.replace(/&#39;|&quot;/g, ''), page);
    assert.ok(!setCookie(bad.callback, SESSION) || isClearing(setCookie(bad.callback, SESSION)));
    assert.equal(new URL(good.callback.location).pathname, '/fine');
    // The gateway's log arrives through a pipe: wait for the audit line
    // (JSON with sorted keys).
    const reference = bad.callback.body.match(/under reference ([\w-]+)/)?.[1];
    assert.ok(reference, 'the page gives a log reference');
    // A generic page: no failure kind, nothing of the wasm machinery.
    assert.doesNotMatch(bad.callback.body.replaceAll(`h-${m}`, ''), /wasm|trap|unreachable|panicked|\(${kind}\)/i);
    const audit = new RegExp(`"correlation_id":"${reference}","detail":"((?:[^"\\\\]|\\\\.)*)","event":"login-failed","kind":"${kind}","rule":"h-${m}"`);
    await waitFor(() => audit.test(gwHostile.proc.output), { what: `audit line for h-${m}` });
    // Out of fuel or memory has no detail beyond its class; the others do.
    if (!['loop', 'alloc'].includes(m)) {
      const detail = JSON.parse(`"${gwHostile.proc.output.match(audit)[1]}"`);
      const own = detail.replace(/^(it crashed|it returned an error|its output was refused:|it called) /, '').slice(0, 24);
      assert.ok(own.length > 3 && !bad.callback.body.includes(own), `the page shows the failure's detail: ${detail}`);
    }
  });
}

test('a panicking rule: its panic message, its log lines, the fuel and time it used are in the audit line, not on the page', async () => {
  const bad = await login(gwHostile, stack.idp, new CookieJar(), '/', { rd: '/h/panic' });
  assert.equal(bad.callback.status, 500, show(bad.callback));
  assert.doesNotMatch(bad.callback.body.replaceAll('h-panic', ''), /wasm|trap|unreachable|panic|lib\.rs/i);
  const reference = bad.callback.body.match(/under reference ([\w-]+)/)?.[1];
  assert.ok(reference, 'the page gives a log reference');
  const line = () => gwHostile.proc.output.split('\n')
    .filter((l) => l.startsWith('edgeauth-audit: ')).map((l) => JSON.parse(l.slice('edgeauth-audit: '.length)))
    .find((a) => a.event === 'rule' && a.rule === 'h-panic' && a.correlation_id === reference);
  await waitFor(() => line(), { what: 'the rule audit line' });
  const audit = line();
  assert.equal(audit.kind, 'trap');
  assert.match(audit.detail, /^it crashed \(rule panicked at plugins\/hostile\/src\/lib\.rs:\d+:\d+: hostile rule panics for \S+ on purpose\)$/);
  assert.doesNotMatch(audit.detail, /unreachable/);
  assert.equal(audit.logs[0], 'info: hostile rule: about to panic');
  assert.match(audit.logs[1], /^error: rule panicked at .*: hostile rule panics for \S+ on purpose$/);
  assert.ok(audit.fuel > 0, `fuel used up to the trap: ${audit.fuel}`);
  assert.ok(audit.call_us > 0, `time up to the trap: ${audit.call_us}`);
  const failed = new RegExp(`"correlation_id":"${reference}","detail":"it crashed \\(rule panicked at [^"]*hostile rule panics for \\S+ on purpose\\)","event":"login-failed"`);
  assert.match(gwHostile.proc.output, failed);

  // `edgeauth rule run` says the same, with what it used.
  const event = path.join(tmp, 'panic-event.json');
  fs.writeFileSync(event, JSON.stringify({ user: { sub: 'dave' }, config: { mode: 'panic' } }));
  const out = await cliFails(['rule', 'run', wasm('hostile'), '--event', event, '--name', 'h-panic']);
  assert.match(out, /rule log \[default\/h-panic\] info: hostile rule: about to panic/);
  assert.match(out, /rule `h-panic` failed \[trap\]: it crashed \(rule panicked at [^)]*: hostile rule panics for dave on purpose\) after fuel [1-9]\d* of 50000000, \d+ us/);
  assert.doesNotMatch(out, /unreachable/);
});

test('a fail-open rule that crashes is skipped and logged; the sign-in goes on', async () => {
  const l = await loginOk(gwHostile, stack.idp, new CookieJar(), '/', { rd: '/h/open' });
  assert.equal(new URL(l.callback.location).pathname, '/h/open');
  await waitFor(() => /"kind":"trap","load_us":\d+,"logs":\["error: rule panicked at [^"]*"\],"outcome":"failed-open","rule":"h-open"/.test(gwHostile.proc.output), { what: 'failed-open audit line' });
});

test('require-reauth: the provider is asked for a fresh login (prompt=login, max_age=0), then the chain passes', async () => {
  const jar = new CookieJar();
  const first = await login(gwHostile, stack.idp, jar, '/', { rd: '/h/reauth' });
  assert.equal(first.callback.status, 302, show(first.callback));
  const auth = new URL(first.callback.location);
  assert.equal(auth.origin, stack.idp.issuer);
  assert.equal(auth.searchParams.get('prompt'), 'login');
  assert.equal(auth.searchParams.get('max_age'), '0');
  assert.ok(!setCookie(first.callback, SESSION), 'no session before the fresh login');
  const again = await walkIdp(jar, auth.href, { username: 'alice', password: 'alice-pw' });
  assert.ok(again.location, `IdP did not return: ${again.hops.join('\n')}`);
  assert.ok(again.hops.some((h) => h.includes('POST')), 'the IdP asked for the password again');
  const done = await request(again.location, { jar });
  assert.equal(done.status, 302, show(done));
  assert.equal(new URL(done.location).pathname, '/h/reauth');
  assert.ok(setCookie(done, SESSION) && !isClearing(setCookie(done, SESSION)));
  await waitFor(() => /"event":"login-reauth","rule":"h-reauth"/.test(gwHostile.proc.output), { what: 'audit line' });
});

test('require-reauth cannot be skipped: with prompt/max_age stripped from the authorization URL, the IdP\'s silent SSO gives no session', async () => {
  const jar = new CookieJar();
  const first = await login(gwHostile, stack.idp, jar, '/', { rd: '/h/reauth' });
  assert.equal(first.callback.status, 302, show(first.callback));
  const auth = new URL(first.callback.location);
  assert.equal(auth.searchParams.get('prompt'), 'login');
  // The attacker (the person themselves) edits the URL before the IdP sees it.
  auth.searchParams.delete('prompt');
  auth.searchParams.delete('max_age');
  const silent = await walkIdp(jar, auth.href, { username: 'alice', password: 'alice-pw' });
  assert.ok(silent.location, `IdP did not return: ${silent.hops.join('\n')}`);
  assert.ok(!silent.hops.some((h) => h.includes('POST')), 'the IdP answered from its session, without a password');
  const done = await request(silent.location, { jar });
  assert.equal(done.status, 401, show(done));
  assert.match(done.body, /Fresh sign-in required/);
  const session = setCookie(done, SESSION);
  assert.ok(!session || isClearing(session), `no session without a fresh sign-in\n${show(done)}`);
  // And the protected path still needs a sign-in.
  const after = await request(`${gwHostile.url}/h/reauth`, { jar });
  assert.equal(after.status, 302, show(after));
  assert.equal(new URL(after.location).pathname, '/.edgeauth/login');
});

test('artifacts: tampered in storage fails closed; unsigned, foreign-key and tampered uploads are refused; a good upload fixes it live', async () => {
  const l = await login(gwStore, stack.idp, new CookieJar(), '/', { rd: '/store' });
  assert.equal(l.callback.status, 500, show(l.callback));
  // The page names the class; why (the tampered artifact) is in the audit line.
  assert.match(l.callback.body, /could not complete: it could not be loaded\./);
  assert.doesNotMatch(l.callback.body, /tampered/);
  await waitFor(() => /"detail":"[^"]*tampered[^"]*","event":"login-failed","kind":"load"/.test(gwStore.proc.output), { what: 'audit line with the detail' });

  const good = fs.readFileSync(art['email-domain']);
  const tampered = Buffer.from(good);
  tampered[tampered.length - 10] ^= 0x01;
  const foreignKey = (await cli(['rule', 'keygen', '--kid', 'test1'])).split('\n').filter((x) => x && !x.startsWith('#'))[0];
  const foreign = path.join(tmp, 'foreign.rule');
  await cli(['rule', 'build', wasm('email_domain'), '--name', 'email-domain', '-o', foreign], { EDGEAUTH_RULE_SIGNING_KEY: foreignKey });
  const rawWasm = fs.readFileSync(wasm('email_domain'));
  for (const [what, body, re] of [
    ['tampered', tampered, /tampered/],
    ['signed by another key', fs.readFileSync(foreign), /signature/],
    ['unsigned wasm', rawWasm, /not a rule artifact/],
    ['for another rule name', fs.readFileSync(art['group-roles']), /signed for rule/],
  ]) {
    const r = await admin(gwStore, 'PUT', 'default/email-domain', body);
    assert.equal(r.status, 400, `${what}: ${r.body}`);
    assert.match(r.body, re, what);
  }
  const noAuth = await request(`${gwStore.url}/.edgeauth/admin/rules/default/email-domain`, { method: 'PUT', body: good, headers: { authorization: 'Bearer wrong' } });
  assert.equal(noAuth.status, 401);

  await upload(gwStore, 'email-domain');
  const listed = JSON.parse((await admin(gwStore, 'GET', 'default')).body);
  assert.equal(listed.chain[0].artifact.header.name, 'email-domain');
  const fixed = await loginOk(gwStore, stack.idp, new CookieJar(), '/', { rd: '/store' });
  assert.equal(new URL(fixed.callback.location).pathname, '/store');
});

test('uploads are stored bound with the gateway MAC: a bit flipped in the stored bytes fails closed, the same bytes unflipped sign in after a restart', async () => {
  const vars = ruleVars([{ name: 'email-domain', config: { domains: ['example.com'] } }]);
  const uploaded = fs.readFileSync(art['email-domain']);
  // Uploads are stored as a version (content-addressed), deployed by the
  // tenant's deployment record.
  const KEY = `rule-version:default:email-domain:${crypto.createHash('sha256').update(uploaded).digest('hex').slice(0, 16)}`;
  const first = await stack.startGateway({ vars });
  let stored;
  let entries;
  try {
    await upload(first, 'email-domain');
    await loginOk(first, stack.idp, new CookieJar(), '/', { rd: '/bound' });
    entries = readKv(first.stateDir);
    stored = Buffer.from(entries[KEY], 'base64');
  } finally {
    await first.stop();
  }
  assert.ok(stored.subarray(0, 16).equals(Buffer.from('EDGEAUTH-BOUND2\n')), 'stored bound (keyed BLAKE3)');
  assert.ok(stored.subarray(stored.length - uploaded.length).equals(uploaded), 'the signed artifact, unchanged, at the end');
  const flipped = Buffer.from(stored);
  flipped[flipped.length - 100] ^= 0x01; // in the precompiled code
  for (const [what, bytes] of [['flipped', flipped], ['intact', stored]]) {
    const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-'));
    writeKv(stateDir, { ...entries, [KEY]: bytes.toString('base64') });
    // The same session keys: the binding key is derived from them.
    const gw = await stack.startGateway({ stateDir, vars, sessionKeys: first.sessionKeys });
    try {
      if (what === 'flipped') {
        const l = await login(gw, stack.idp, new CookieJar(), '/', { rd: '/bound' });
        assert.equal(l.callback.status, 500, show(l.callback));
        assert.match(l.callback.body, /could not complete: it could not be loaded\./);
        await waitFor(() => /"detail":"[^"]*altered in storage[^"]*","event":"login-failed","kind":"load"/.test(gw.proc.output), { what: 'audit line: altered in storage' });
      } else {
        const ok = await loginOk(gw, stack.idp, new CookieJar(), '/', { rd: '/bound' });
        assert.equal(new URL(ok.callback.location).pathname, '/bound');
      }
    } finally {
      await gw.stop();
    }
  }
});

test('uploads that would never run are refused: unknown tenant 404, a name in no chain 409, naming what exists', async () => {
  const cliUpload = (gw, file, tenant) => cliFails(['rule', 'upload', file, '--gateway', gw.url, '--tenant', tenant], { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN });
  const unknown = await admin(gwStore, 'PUT', 'acme/email-domain', fs.readFileSync(art['email-domain']));
  assert.equal(unknown.status, 404, unknown.body);
  assert.equal(JSON.parse(unknown.body).message, 'no tenant `acme`; the tenants are `default`');
  assert.match(await cliUpload(gwStore, art['email-domain'], 'acme'), /upload refused \(HTTP 404\): no tenant `acme`; the tenants are `default`/);

  // gwStore's chain has only email-domain: group-roles would be stored and never run.
  const stray = await admin(gwStore, 'PUT', 'default/group-roles', fs.readFileSync(art['group-roles']));
  assert.equal(stray.status, 409, stray.body);
  assert.equal(JSON.parse(stray.body).message, 'rule `group-roles` is in no chain of tenant `default`; its chain has `email-domain`');
  assert.match(await cliUpload(gwStore, art['group-roles'], 'default'), /upload refused \(HTTP 409\): rule `group-roles` is in no chain of tenant `default`; its chain has `email-domain`/);
  // Nothing was stored, and the refusal is audited.
  const listed = JSON.parse((await admin(gwStore, 'GET', 'default')).body);
  assert.deepEqual(listed.chain.map((r) => r.name), ['email-domain']);
  await waitFor(() => /"detail":"rule `group-roles` is in no chain[^"]*","event":"artifact-refused"/.test(gwStore.proc.output), { what: 'audit line of the refusal' });

  // A rule shipped as a file is never read from uploads.
  const shipped = await admin(gwFiles, 'PUT', 'default/email-domain', fs.readFileSync(art['email-domain']));
  assert.equal(shipped.status, 409, shipped.body);
  assert.match(JSON.parse(shipped.body).message, /loaded from `file:\/rules\/email-domain\.rule`, not from uploads/);
});

test('artifacts shipped with the app (Spin files) are loaded from the mount and verified the same way', async () => {
  const bob = await login(gwFiles, stack.idp, new CookieJar(), '/', { username: 'bob', rd: '/files' });
  assert.equal(bob.callback.status, 403, show(bob.callback));
  assert.match(bob.callback.body, /a verified email address is required/);
  const alice = await loginOk(gwFiles, stack.idp, new CookieJar(), '/', { rd: '/files' });
  assert.equal(new URL(alice.callback.location).pathname, '/files');
});

test('admin dry run reports commands and timings without side effects', async () => {
  const event = JSON.stringify({ user: { sub: 'carol', email: 'carol@example.com', email_verified: true, groups: ['devs'] }, transaction: { first_login: true } });
  const r = await admin(gwExamples, 'POST', 'default/_run?iterations=3', event);
  assert.equal(r.status, 200, r.body);
  const report = JSON.parse(r.body);
  assert.equal(report.iterations, 3);
  assert.deepEqual(report.results.map((x) => x.rule), ['email-domain', 'group-roles', 'profile', 'crm-lead']);
  assert.deepEqual(report.results[1].commands[0], { command: 'set-claim', name: 'https://example.com/roles', value: ['developer'] });
  assert.ok(report.rules.every((x) => x.total_us.median > 0));
});
