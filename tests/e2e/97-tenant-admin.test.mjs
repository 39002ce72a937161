// Tenant documents managed at runtime (tenant_store = "kv", README "Tenant
// documents"): one gateway process with a fixed tenant from the `tenants`
// variable (`fixed` at http://localhost:PORT) and tenants put, changed and
// deleted through the admin API and the `edgeauth tenant` CLI while it runs
// (`acme` at http://127.0.0.1:PORT, others on hosts reached with a Host
// header). Nothing is restarted between steps.
//
// Needs the rules built (scripts/test does it): acme's document carries its
// own rule chain.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { ROOT, freePort } from '../lib/procs.mjs';
import { HOST_BIN, CLIENT_SECRET, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { SESSION, show, loginOk, originSaw } from '../lib/gateway-flow.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);
const cli = async (args, env = {}) =>
  (await run(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' })).stdout;
/** The CLI's exit code and output, for runs that are expected to fail. */
const cliResult = (args, env = {}) => new Promise((resolve) => {
  execFile(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' }, (err, stdout, stderr) =>
    resolve({ code: err ? err.code : 0, stdout, stderr }));
});

let idp; let origin; let gw; let tmp; let roles;
let acme; let fixed; // { url } of the two hosts a browser can reach

const admin = (method, p = '', body, { token = ADMIN_TOKEN, host } = {}) => {
  const headers = [];
  if (token !== null) headers.push(['Authorization', `Bearer ${token}`]);
  if (host) headers.push(['Host', host]);
  if (body !== undefined) headers.push(['Content-Type', 'application/json']);
  return rawRequest(fixed.url, {
    method, target: `/.edgeauth/admin/tenants${p}`, headers,
    body: body === undefined ? null : (typeof body === 'string' ? body : JSON.stringify(body)),
  }).then((r) => ({ ...r, text: r.body.toString(), json: () => JSON.parse(r.body.toString()) }));
};

/** GET a path on a host that only a Host header reaches. */
const onHost = (host, target = '/.edgeauth/health') =>
  rawRequest(fixed.url, { target, headers: [['Host', host]] });

const acmeDoc = (extra = {}) => ({
  public_url: acme.url,
  name: 'Acme Corporation',
  oidc_client_secret: CLIENT_SECRET,
  assertion_audience: 'https://acme.app',
  allowed_email_domains: ['example.com'],
  ...extra,
});

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-tenant-admin-'));
  const port = await freePort('127.0.0.1');
  acme = { url: `http://127.0.0.1:${port}` };
  fixed = { url: `http://localhost:${port}` };
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [acme.url, fixed.url] }), startOrigin()]);

  const lines = (await cli(['rule', 'keygen', '--kid', 'docs'])).split('\n').filter((l) => l && !l.startsWith('#'));
  roles = path.join(tmp, 'roles.rule');
  await cli(['rule', 'build', wasm('group_roles'), '--name', 'roles', '-o', roles], { EDGEAUTH_RULE_SIGNING_KEY: lines[0] });

  gw = await startGateway({
    port, originUrl: origin.url, issuer: idp.issuer,
    // The gateway-wide client secret is not the IdP's: a stored tenant
    // signs in only with the secret its own document holds.
    clientSecret: 'not-the-idp-secret',
    vars: {
      tenants: JSON.stringify({ fixed: { public_url: fixed.url, name: 'Fixed Inc', oidc_client_secret: CLIENT_SECRET } }),
      tenant_store: 'kv',
      rule_keys: lines[1],
      admin_token: ADMIN_TOKEN,
    },
  });
});

after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('admin calls without the right token are refused and reveal nothing, on any host', async () => {
  for (const token of [null, '', 'wrong', `${ADMIN_TOKEN}x`, ADMIN_TOKEN.slice(0, -1)]) {
    for (const host of [undefined, 'evil.example']) {
      for (const [method, p, body] of [['GET', ''], ['GET', '/fixed'], ['PUT', '/evil', acmeDoc({ public_url: 'https://evil.example' })], ['DELETE', '/fixed']]) {
        const r = await admin(method, p, body, { token, host });
        assert.equal(r.status, 401, `${method} ${p} token=${token} host=${host}: ${r.status} ${r.text}`);
        assert.equal(r.json().error, 'unauthorized');
        assert.doesNotMatch(r.text, /fixed|Fixed|localhost|secret/i, 'a refusal names no tenant');
      }
    }
  }
  assert.equal((await admin('GET', '/evil')).status, 404, 'a refused PUT stored nothing');
  assert.equal((await onHost('evil.example')).status, 404);
});

test('a rule upload for a tenant not yet stored is refused, naming the tenants there are', async () => {
  const r = await request(`${fixed.url}/.edgeauth/admin/rules/acme/roles`, {
    method: 'PUT', body: fs.readFileSync(roles), accept: 'application/json',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/octet-stream' },
  });
  assert.equal(r.status, 404, r.body);
  assert.equal(JSON.parse(r.body).message, 'no tenant `acme`; the tenants are `fixed`');
});

test('the tenants variable still works unchanged, and a host no tenant has gets 404', async () => {
  const r = await request(`${acme.url}/app/x`);
  assert.equal(r.status, 404, show(r));
  assert.match(r.body, /Unknown host/);
  await loginOk(fixed, idp, new CookieJar(), '/app/fixed');
  const list = (await admin('GET')).json();
  assert.deepEqual(list.tenants, [{ id: 'fixed', host: new URL(fixed.url).host, name: 'Fixed Inc', connections: [], source: 'variable' }]);
});

test('a tenant put through the API is served at once: login end to end, its own rules, listed', async () => {
  await origin.reset();
  const put = await admin('PUT', '/acme', acmeDoc({
    rules: { chain: [{ name: 'roles', config: { roles: { admins: ['admin'] }, header: 'x-roles' }, headers: ['x-roles'] }] },
  }));
  assert.equal(put.status, 201, put.text);
  assert.equal(put.json().oidc_client_secret.set, true);
  // Its rule can be uploaded now that the tenant and its chain exist.
  await cli(['rule', 'upload', roles, '--gateway', fixed.url, '--tenant', 'acme'], { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN });

  const jar = new CookieJar();
  const l = await loginOk(acme, idp, jar, '/app/acme');
  assert.equal(new URL(l.start.params.get('redirect_uri')).origin, acme.url);
  const r = await request(`${acme.url}/app/acme`, { jar });
  assert.equal(r.status, 200, show(r));
  const seen = (await originSaw(origin, '/app/acme')).at(-1);
  assert.equal(seen.headers['x-auth-request-email'], 'alice@example.com');
  assert.equal(seen.headers['x-roles'], 'admin', "acme's document brings its rule chain");

  // A stored tenant's rule header is stripped from clients on every host.
  await origin.reset();
  const fixedJar = new CookieJar();
  await loginOk(fixed, idp, fixedJar, '/app/f');
  const f = await request(`${fixed.url}/app/f`, { jar: fixedJar, headers: { 'X-Roles': 'admin', 'x_roles': 'admin' } });
  assert.equal(f.status, 200, show(f));
  const fseen = (await originSaw(origin, '/app/f')).at(-1);
  assert.equal(fseen.headers['x-roles'], undefined, 'x-roles only ever comes from a rule');
  assert.equal(fseen.headers.x_roles, undefined);

  const list = (await admin('GET')).json().tenants;
  assert.deepEqual(list.find((t) => t.id === 'acme'),
    { id: 'acme', host: new URL(acme.url).host, name: 'Acme Corporation', connections: [], source: 'kv' });
  assert.ok(list.find((t) => t.id === 'fixed'));
});

test('documents read back without secrets; put back unchanged, they keep them', async () => {
  const doc = {
    public_url: 'https://initech.test',
    name: 'Initech',
    oidc_client_secret: 'initech-oidc-secret-1',
    connections: [
      { id: 'social', name: 'Social', kind: 'oidc', issuer: 'https://social.initech.test', client_id: 'initech', client_secret: 'initech-conn-secret-2' },
      { id: 'corp', name: 'Corp', kind: 'oidc', issuer: 'https://corp.initech.test', client_id: 'initech-corp', client_secret: 'initech-conn-secret-3' },
    ],
    rule_secrets: { crm: 'initech-rule-secret-4' },
  };
  assert.equal((await admin('PUT', '/initech', doc)).status, 201);
  const got = await admin('GET', '/initech');
  assert.equal(got.status, 200, got.text);
  assert.doesNotMatch(got.text, /initech-(oidc|conn|rule)-secret/, 'no secret value is ever returned');
  const shown = got.json();
  assert.deepEqual(shown.oidc_client_secret, { set: true });
  assert.deepEqual(shown.connections.map((c) => c.client_secret), [{ set: true }, { set: true }]);
  assert.deepEqual(shown.rule_secrets, { crm: { set: true } });
  const listed = (await admin('GET')).json().tenants.find((t) => t.id === 'initech');
  assert.deepEqual(listed.connections, ['social', 'corp']);

  // Edit what was read: rename, reorder connections, drop one secret.
  shown.name = 'Initech Ltd';
  shown.connections.reverse();
  shown.rule_secrets.crm = null;
  const back = await admin('PUT', '/initech', shown);
  assert.equal(back.status, 200, back.text);
  const again = (await admin('GET', '/initech')).json();
  assert.equal(again.name, 'Initech Ltd');
  assert.deepEqual(again.connections.map((c) => [c.id, c.client_secret]), [['corp', { set: true }], ['social', { set: true }]]);
  assert.deepEqual(again.rule_secrets, {});
  // A "keep" for a secret that was never stored is an error naming it.
  const bad = await admin('PUT', '/initech', { ...again, connections: [...again.connections, { id: 'new', client_secret: { set: true } }] });
  assert.equal(bad.status, 400, bad.text);
  assert.equal(bad.json().field, 'connections[2].client_secret');
});

test('an update takes effect on the next request; the kept client secret still signs in', async () => {
  const jar = new CookieJar();
  await loginOk(acme, idp, jar, '/app/u');
  assert.equal((await request(`${acme.url}/app/u`, { jar })).status, 200);
  // Read back (secret hidden), change the domains, put back.
  const doc = (await admin('GET', '/acme')).json();
  assert.deepEqual(doc.oidc_client_secret, { set: true });
  doc.allowed_email_domains = 'acme.example';
  assert.equal((await admin('PUT', '/acme', doc)).status, 200);
  const denied = await request(`${acme.url}/app/u`, { jar });
  assert.equal(denied.status, 403, show(denied));
  doc.allowed_email_domains = 'example.com';
  assert.equal((await admin('PUT', '/acme', doc)).status, 200);
  assert.equal((await request(`${acme.url}/app/u`, { jar })).status, 200);
  // The secret omitted on every PUT was kept: a new sign-in redeems its code.
  await loginOk(acme, idp, new CookieJar(), '/app/u2');
});

test('malformed documents are refused with the field named, and nothing is stored', async () => {
  const cases = [
    [{ public_url: 'http://bad.example' }, 'public_url', /https/],
    [{ name: 'no url' }, 'public_url', /required/],
    [{ public_url: 'https://bad.example', routes: [{ path: '/a/' }, { path: '/x/%2e%2e/%2e%2e/y' }] }, 'routes[1].path', /./],
    [{ public_url: 'https://bad.example', routes: [{ path: '/.edgeauth/x', public: true }] }, 'routes[0].path', /reserved/],
    [{ public_url: 'https://bad.example', allowed_email_domains: 'not a domain' }, 'allowed_email_domains', /domain/],
    [{ public_url: 'https://bad.example', session_lifetime_secs: 5 }, 'session_lifetime_secs', /between/],
    [{ public_url: 'https://bad.example', session_keys: 'k:x' }, 'session_keys', /cannot be set per tenant/],
    [{ public_url: 'https://bad.example', connections: [{ id: 'a' }, { name: 'no id' }] }, 'connections[1].id', /required/],
    [{ public_url: 'https://bad.example', connections: [{ id: 'a' }, { id: 'a' }] }, 'connections[1].id', /twice/],
    [{ public_url: 'https://bad.example', rules: { chain: [{ name: 'roles', fuel: 1 }] } }, 'rules.chain[0]', /fuel/],
    [{ public_url: 'https://bad.example', rules: { chain: [{ name: 'roles', headers: ['X-Auth-Request-User'] }] } }, 'rules.chain[0]', /reserved/],
    [{ public_url: 'https://bad.example', rule_secrets: { crm: 5 } }, 'rule_secrets.crm', /string/],
  ];
  for (const [doc, field, message] of cases) {
    for (const p of ['/bad', '/bad/_validate']) {
      const r = await admin(p.endsWith('_validate') ? 'POST' : 'PUT', p, doc);
      assert.equal(r.status, 400, `${JSON.stringify(doc)}: ${r.text}`);
      const body = r.json();
      assert.equal(body.error, 'invalid_document');
      assert.equal(body.field, field, `${JSON.stringify(doc)}: ${r.text}`);
      assert.match(body.message, message);
    }
  }
  for (const [body, status, error] of [['{"public_url": ', 400, 'invalid_json'], ['[1]', 400, 'invalid_document'],
    [JSON.stringify({ public_url: 'https://bad.example', name: 'x'.repeat(70000) }), 413, 'too_large']]) {
    const r = await admin('PUT', '/bad', body);
    assert.equal(r.status, status, r.text);
    assert.equal(r.json().error, error);
  }
  assert.equal((await admin('PUT', '/Bad', acmeDoc())).json().error, 'invalid_id');
  assert.equal((await admin('GET', '/bad')).status, 404, 'nothing was stored');
  assert.equal((await onHost('bad.example')).status, 404);
  // A dry run of a good document stores nothing either.
  const ok = await admin('POST', '/good/_validate', { public_url: 'https://good.example' });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json().valid, true);
  assert.equal((await admin('GET', '/good')).status, 404);
});

test("a host another tenant has is refused with 409 naming it; fixed tenants can't be written", async () => {
  for (const [id, url, owner] of [['globex', acme.url, 'acme'], ['globex', fixed.url, 'fixed'], ['globex', 'https://initech.test', 'initech']]) {
    const r = await admin('PUT', `/${id}`, { public_url: url });
    assert.equal(r.status, 409, r.text);
    assert.match(r.json().message, new RegExp(`\`${owner}\``));
    assert.equal(r.json().field, 'public_url');
  }
  const f = await admin('PUT', '/fixed', { public_url: 'https://fixed.example' });
  assert.equal(f.status, 409);
  assert.match(f.json().message, /`tenants` variable/);
  assert.equal((await admin('DELETE', '/fixed')).status, 409);
  assert.equal((await onHost('fixed.example')).status, 404);
});

test('moving a tenant to another host frees the old one', async () => {
  assert.equal((await admin('PUT', '/hooli', { public_url: 'https://hooli-a.test' })).status, 201);
  assert.equal((await onHost('hooli-a.test')).status, 200);
  assert.equal((await onHost('hooli-a.test:443')).status, 200, 'the default port is the same host');
  assert.equal((await onHost('hooli-a.test:80')).status, 404, 'port 80 is not https');
  assert.equal((await admin('PUT', '/hooli', { public_url: 'https://hooli-b.test' })).status, 200);
  assert.equal((await onHost('hooli-a.test')).status, 404);
  assert.equal((await onHost('hooli-b.test')).status, 200);
  // The old host is free for another tenant.
  assert.equal((await admin('PUT', '/pied', { public_url: 'https://hooli-a.test' })).status, 201);
  assert.equal((await admin('GET')).json().tenants.find((t) => t.id === 'hooli').host, 'hooli-b.test');
});

test('a deleted tenant is gone at once; created again, it does not accept the old cookies', async () => {
  const jar = new CookieJar();
  await loginOk(acme, idp, jar, '/app/d');
  const oldCookie = jar.get('127.0.0.1', SESSION).value;
  const del = await admin('DELETE', '/acme');
  assert.equal(del.status, 200, del.text);
  const gone = await request(`${acme.url}/app/d`, { jar });
  assert.equal(gone.status, 404, show(gone));
  assert.equal((await admin('GET', '/acme')).status, 404);
  assert.equal((await admin('DELETE', '/acme')).status, 404);
  assert.ok(!(await admin('GET')).json().tenants.some((t) => t.id === 'acme'));

  assert.equal((await admin('PUT', '/acme', acmeDoc())).status, 201);
  const fresh = new CookieJar();
  fresh.set('127.0.0.1', SESSION, oldCookie);
  const r = await request(`${acme.url}/app/d`, { jar: fresh });
  assert.equal(r.status, 302, `the old session must not open: ${show(r)}`);
  assert.equal(new URL(r.location).pathname, '/.edgeauth/login');
});

test('the edgeauth tenant CLI manages documents on a running gateway and validates offline', async () => {
  const env = { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN, EDGEAUTH_GATEWAY: fixed.url };
  const file = path.join(tmp, 'umbrella.json');
  fs.writeFileSync(file, JSON.stringify({ id: 'umbrella', public_url: 'https://umbrella.test', name: 'Umbrella', oidc_client_secret: 'umbrella-secret' }));
  assert.match(await cli(['tenant', 'validate', file, '--manifest', path.join(ROOT, 'spin.toml')]), /OK, tenant `umbrella` \(Umbrella\) at host `umbrella.test`/);
  assert.match(await cli(['tenant', 'put', file], env), /tenant `umbrella` created/);
  assert.equal((await onHost('umbrella.test')).status, 200);
  const got = await cli(['tenant', 'get', 'umbrella'], env);
  assert.doesNotMatch(got, /umbrella-secret/);
  assert.deepEqual(JSON.parse(got).oidc_client_secret, { set: true });
  // Read back, edit, put back: the secret is kept.
  const edited = { ...JSON.parse(got), name: 'Umbrella Corp' };
  fs.writeFileSync(file, JSON.stringify(edited));
  assert.match(await cli(['tenant', 'validate', file]), /OK/, 'a read-back document validates offline');
  assert.match(await cli(['tenant', 'put', file, '--id', 'umbrella'], env), /updated/);
  const list = await cli(['tenant', 'list'], env);
  assert.match(list, /^umbrella\s+umbrella\.test\s+kv\s+Umbrella Corp/m);
  assert.match(list, /^fixed\s+localhost:\d+\s+variable\s+Fixed Inc/m);
  assert.match(await cli(['tenant', 'delete', 'umbrella'], env), /deleted/);
  assert.equal((await onHost('umbrella.test')).status, 404);

  // Refusals: offline and online name the field; exit code 1.
  fs.writeFileSync(file, JSON.stringify({ id: 'broken', public_url: 'https://broken.test', routes: [{ path: '/.edgeauth/' }] }));
  for (const args of [['tenant', 'validate', file], ['tenant', 'put', file], ['tenant', 'validate', file, '--gateway', fixed.url]]) {
    const r = await cliResult(args, env);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /routes\[0\]\.path/);
  }
  const denied = await cliResult(['tenant', 'list'], { ...env, EDGEAUTH_ADMIN_TOKEN: 'wrong' });
  assert.equal(denied.code, 1);
  assert.match(denied.stderr, /HTTP 401/);
});
