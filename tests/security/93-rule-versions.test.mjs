// Rule versions and deployments (plugins/README.md, "Versions and
// deployments"), the attacks: overwriting a stored version (through the API,
// and in storage: another version's bytes put under its key), reading or
// deploying another tenant's versions and logs, and every new endpoint
// without the admin token. One gateway, two tenants on two hosts (`acme` at
// 127.0.0.1, `globex` at localhost), both with a rule named `roles`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request } from '../lib/http.mjs';
import { ROOT, freePort, waitFor } from '../lib/procs.mjs';
import { HOST_BIN, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { login, loginOk, show } from '../lib/gateway-flow.mjs';
import { readKv, writeKv } from '../lib/kv.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);
const cli = async (args, env = {}) => (await run(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' })).stdout;

let idp; let origin; let gw; let tmp; let port; let vars;
let acme; let globex;
const file = {};
const v = {};

async function admin(host, method, p, { body, token = ADMIN_TOKEN } = {}) {
  const headers = { 'content-type': 'application/octet-stream' };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  const r = await request(`${host.url}/.edgeauth/admin/rules/${p}`, { method, body, headers, accept: 'application/json' });
  return { status: r.status, json: (() => { try { return JSON.parse(r.body); } catch { return null; } })(), body: r.body };
}

const gatewayAt = (stateDir, sessionKeys) => startGateway({ port, originUrl: origin.url, issuer: idp.issuer, vars, stateDir, sessionKeys });

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-versions-'));
  port = await freePort('127.0.0.1');
  acme = { url: `http://127.0.0.1:${port}` };
  globex = { url: `http://localhost:${port}` };
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [acme.url, globex.url] }), startOrigin()]);
  const lines = (await cli(['rule', 'keygen', '--kid', 'sec1'])).split('\n').filter((l) => l && !l.startsWith('#'));
  for (const [id, crate] of [['one', 'group_roles'], ['two', 'email_domain']]) {
    file[id] = path.join(tmp, `${id}.rule`);
    await cli(['rule', 'build', wasm(crate), '--name', 'roles', '-o', file[id]], { EDGEAUTH_RULE_SIGNING_KEY: lines[0] });
    v[id] = crypto.createHash('sha256').update(fs.readFileSync(file[id])).digest('hex').slice(0, 16);
  }
  const roles = { name: 'roles', config: { roles: { admins: ['admin'] }, domains: ['example.com'] } };
  vars = {
    tenants: JSON.stringify({ acme: { public_url: acme.url }, globex: { public_url: globex.url } }),
    rules: JSON.stringify({ tenants: { acme: { chain: [roles] }, globex: { chain: [roles] } } }),
    rule_keys: lines[1],
    admin_token: ADMIN_TOKEN,
  };
  gw = await gatewayAt();
});

after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a version cannot be overwritten: the same bytes are the same version, untouched; no endpoint writes a version by id', async () => {
  const first = await admin(acme, 'POST', 'acme/roles/versions', { body: fs.readFileSync(file.one) });
  assert.equal(first.status, 201, first.body);
  assert.equal(first.json.version, v.one);
  const key = `rule-version:acme:roles:${v.one}`;
  const stored = readKv(gw.stateDir)[key];
  assert.ok(stored);
  const again = await admin(acme, 'POST', 'acme/roles/versions', { body: fs.readFileSync(file.one) });
  assert.equal(again.status, 200, again.body);
  assert.equal(again.json.created, false);
  assert.equal(again.json.meta.uploaded_at, first.json.meta.uploaded_at, 'the first upload\'s record stays');
  assert.equal(readKv(gw.stateDir)[key], stored, 'the stored version is not rewritten');
  // Other bytes under this version's id: there is no such endpoint.
  for (const [method, p] of [['PUT', `acme/roles/versions/${v.one}`], ['POST', `acme/roles/versions/${v.one}`], ['PUT', 'acme/roles/versions']]) {
    const r = await admin(acme, method, p, { body: fs.readFileSync(file.two) });
    assert.equal(r.status, 404, `${method} ${p}: ${r.body}`);
  }
  assert.equal(readKv(gw.stateDir)[key], stored);
});

test('another tenant\'s versions, deployment and logs are neither visible nor deployable', async () => {
  const up = await admin(acme, 'PUT', 'acme/roles', { body: fs.readFileSync(file.one) });
  assert.equal(up.status, 200, up.body); // stored above; deployed now
  assert.deepEqual(up.json.deployment.versions, { roles: v.one });
  await loginOk(acme, idp, new CookieJar(), '/acme-signed-in');
  await waitFor(async () => (await admin(acme, 'GET', 'acme/roles/logs')).json?.runs.length === 1, { what: 'acme\'s run logged' });

  // Through globex (its own host) and through acme's host naming globex: the same.
  for (const host of [globex, acme]) {
    const versions = await admin(host, 'GET', 'globex/roles/versions');
    assert.equal(versions.status, 200);
    assert.deepEqual(versions.json.versions, [], 'acme\'s version is not listed for globex');
    const deploy = await admin(host, 'POST', 'globex/_deploy', { body: JSON.stringify({ rules: [`roles@${v.one}`] }) });
    assert.equal(deploy.status, 404, deploy.body);
    assert.equal(deploy.json.message, 'rule `roles` of tenant `globex` has no versions; upload one first');
    assert.deepEqual((await admin(host, 'GET', 'globex/roles/logs')).json.runs, []);
    assert.equal((await admin(host, 'GET', 'globex/_deployment')).json.deployment, null);
  }
  // Globex's sign-in does not run acme's version: it has none to run.
  const g = await login(globex, idp, new CookieJar(), '/globex');
  assert.equal(g.callback.status, 500, show(g.callback));
  await waitFor(() => /"detail":"[^"]*no version of it is deployed[^"]*","event":"login-failed","kind":"load","rule":"roles","sub":"alice","tenant":"globex"/.test(gw.proc.output), { what: 'globex\'s load failure' });
  // An unknown tenant is refused naming the tenants.
  const nobody = await admin(acme, 'POST', 'initech/_deploy', { body: JSON.stringify({ rules: [`roles@${v.one}`] }) });
  assert.equal(nobody.status, 404);
  assert.match(nobody.json.message, /^no tenant `initech`; the tenants are `acme`, `globex`/);
});

test('every version and deployment endpoint needs the admin token, and refused calls change nothing', async () => {
  const before = (await admin(acme, 'GET', 'acme/_deployment')).json.deployment;
  const calls = [
    ['GET', 'acme/_deployment'], ['POST', 'acme/_deploy', JSON.stringify({ rules: [`roles@${v.one}`] })],
    ['POST', 'acme/_rollback'], ['POST', 'acme/_gc'], ['GET', 'acme/roles/versions'],
    ['POST', 'acme/roles/versions', fs.readFileSync(file.two)], ['GET', 'acme/roles/logs'],
  ];
  for (const token of [null, 'wrong', `${ADMIN_TOKEN}x`]) {
    for (const [method, p, body] of calls) {
      const r = await admin(acme, method, p, { body, token });
      assert.equal(r.status, 401, `${method} ${p} with ${token}: ${r.body}`);
      assert.doesNotMatch(r.body, /roles@|versions"|runs"/, 'nothing is disclosed');
    }
  }
  assert.deepEqual((await admin(acme, 'GET', 'acme/_deployment')).json.deployment, before);
  assert.deepEqual((await admin(acme, 'GET', 'acme/roles/versions')).json.versions.map((x) => x.version), [v.one], 'nothing uploaded');
});

test('a stored version swapped for another version\'s bytes fails closed (the MAC binds the version id)', async () => {
  const up = await admin(acme, 'POST', 'acme/roles/versions', { body: fs.readFileSync(file.two) });
  assert.equal(up.status, 201, up.body);
  const entries = readKv(gw.stateDir);
  const sessionKeys = gw.sessionKeys;
  await gw.stop();
  gw = undefined;
  // The deployed version (one) now holds version two's stored bytes.
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-'));
  writeKv(stateDir, { ...entries, [`rule-version:acme:roles:${v.one}`]: entries[`rule-version:acme:roles:${v.two}`] });
  gw = await gatewayAt(stateDir, sessionKeys);
  const l = await login(acme, idp, new CookieJar(), '/swapped');
  assert.equal(l.callback.status, 500, show(l.callback));
  assert.match(l.callback.body, /could not complete: it could not be loaded\./);
  await waitFor(() => /"detail":"[^"]*altered in storage[^"]*","event":"login-failed","kind":"load"/.test(gw.proc.output), { what: 'audit line: altered in storage' });
});
