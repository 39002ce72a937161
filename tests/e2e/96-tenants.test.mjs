// Tenants selected by host (variable `tenants`): one gateway process serves
// `acme` at http://127.0.0.1:PORT and `globex` at http://localhost:PORT (same
// socket, two hosts a browser keeps separate cookies for). Each tenant has its
// own policy and its own rule chain; a host no tenant has gets 404; a session
// or a paused sign-in from one tenant is worthless on the other; a tenant
// whose rule runs away fails closed while the other's sign-ins go through.
//
// Needs the rules built (scripts/test does it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request, rawRequest, setCookie } from '../lib/http.mjs';
import { ROOT, freePort, waitFor } from '../lib/procs.mjs';
import { HOST_BIN, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { spinDefect } from '../lib/runtime.mjs';
import { SESSION, show, login, loginOk, verifyAssertion, originSaw } from '../lib/gateway-flow.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);
const cli = async (args, env = {}) =>
  (await run(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' })).stdout;

let idp; let origin; let gw; let tmp;
let acme; let globex; // { url } of each tenant's host on the one gateway

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-tenants-'));
  const port = await freePort('127.0.0.1');
  acme = { url: `http://127.0.0.1:${port}` };
  globex = { url: `http://localhost:${port}` };
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [acme.url, globex.url] }), startOrigin()]);

  const lines = (await cli(['rule', 'keygen', '--kid', 'tenants'])).split('\n').filter((l) => l && !l.startsWith('#'));
  const signing = { EDGEAUTH_RULE_SIGNING_KEY: lines[0] };
  const roles = path.join(tmp, 'roles.rule');
  const loop = path.join(tmp, 'loop.rule');
  await cli(['rule', 'build', wasm('group_roles'), '--name', 'roles', '-o', roles], signing);
  await cli(['rule', 'build', wasm('hostile'), '--name', 'loop', '-o', loop], signing);

  gw = await startGateway({
    port, originUrl: origin.url, issuer: idp.issuer,
    vars: {
      tenants: JSON.stringify({
        acme: { public_url: acme.url, assertion_audience: 'https://acme.app' },
        globex: {
          public_url: globex.url,
          assertion_audience: 'https://globex.app',
          routes: [{ path: '/strict/', allowed_email_domains: ['globex.test'] }],
        },
      }),
      rules: JSON.stringify({
        tenants: {
          acme: { chain: [{ name: 'roles', config: { roles: { admins: ['admin'] }, header: 'x-roles' }, headers: ['x-roles'] }] },
          // Only sign-ins returning to /runaway/ meet the endless loop.
          globex: { chain: [{ name: 'loop', config: { mode: 'loop', path: '/runaway/' }, fuel: 20000000 }] },
        },
      }),
      rule_keys: lines[1],
      admin_token: ADMIN_TOKEN,
    },
  });
  const admin = { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN };
  await cli(['rule', 'upload', roles, '--gateway', acme.url, '--tenant', 'acme'], admin);
  await cli(['rule', 'upload', loop, '--gateway', acme.url, '--tenant', 'globex'], admin);
});

after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('a host no tenant has gets 404, for browsers and API clients, and nothing is forwarded', async () => {
  await origin.reset();
  for (const host of ['evil.example', `127.0.0.1:${new URL(acme.url).port}0`, 'acme.app']) {
    const r = await rawRequest(acme.url, { target: '/app/x', headers: [['Host', host]] });
    assert.equal(r.status, 404, `Host: ${host}`);
    assert.match(r.body.toString(), /Unknown host/);
    const api = await rawRequest(acme.url, { target: '/app/x', headers: [['Host', host], ['Accept', 'application/json']] });
    assert.equal(api.status, 404);
    assert.equal(JSON.parse(api.body.toString()).error, 'unknown_host');
  }
  assert.deepEqual(await origin.requests(), [], 'the origin must see nothing for unknown hosts');
});

test('two Host headers are refused before any tenant is chosen', spinDefect('duplicateHost'), async () => {
  await origin.reset();
  // Two Host headers, one of them a tenant's: ambiguous. The host refuses the
  // request (RFC 9112 3.2: 400) before any tenant is chosen (README).
  const port = new URL(acme.url).port;
  const twice = await rawRequest(acme.url, { target: '/app/x', headers: [['Host', `127.0.0.1:${port}`], ['Host', `localhost:${port}`]] });
  assert.deepEqual(await origin.requests(), [], 'the origin must see nothing');
  assert.equal(twice.status, 400, `duplicate Host: ${twice.status}`);
  assert.match(twice.body.toString(), /^Bad Request/);
});

test('each host signs in to its own tenant: own callback, own rules, own audience', async () => {
  await origin.reset();
  const jarA = new CookieJar();
  const a = await loginOk(acme, idp, jarA, '/app/a');
  assert.equal(new URL(a.start.params.get('redirect_uri')).origin, acme.url);
  const jarB = new CookieJar();
  const b = await loginOk(globex, idp, jarB, '/app/b');
  assert.equal(new URL(b.start.params.get('redirect_uri')).origin, globex.url);

  for (const [t, jar, p, aud, roles] of [[acme, jarA, '/app/a', 'https://acme.app', 'admin'], [globex, jarB, '/app/b', 'https://globex.app', undefined]]) {
    const r = await request(t.url + p, { jar });
    assert.equal(r.status, 200, show(r));
    const seen = (await originSaw(origin, p)).at(-1);
    assert.equal(seen.headers['x-auth-request-email'], 'alice@example.com');
    assert.equal(seen.headers['x-roles'], roles, `${t.url}: x-roles comes only from acme's rule`);
    const { payload } = await verifyAssertion(t, aud, seen.headers['x-edgeauth-assertion']);
    assert.equal(payload.iss, t.url);
  }
});

test("one tenant's session cookie is refused on the other tenant's host", async () => {
  await origin.reset();
  const jarA = new CookieJar();
  await loginOk(acme, idp, jarA, '/app/mine');
  const stolen = jarA.get('127.0.0.1', SESSION).value;
  const jarB = new CookieJar();
  jarB.set('localhost', SESSION, stolen);
  const r = await request(`${globex.url}/app/theirs`, { jar: jarB });
  assert.equal(r.status, 302, show(r));
  assert.equal(new URL(r.location).pathname, '/.edgeauth/login');
  assert.equal((await originSaw(origin, '/app/theirs')).length, 0);
  const api = await request(`${globex.url}/app/theirs`, { jar: jarB, accept: 'application/json' });
  assert.equal(api.status, 401);
});

test("a tenant's own route policy applies only on its host", async () => {
  const jarA = new CookieJar();
  await loginOk(acme, idp, jarA, '/strict/a');
  assert.equal((await request(`${acme.url}/strict/a`, { jar: jarA })).status, 200);
  const jarB = new CookieJar();
  await loginOk(globex, idp, jarB, '/app/b2');
  const r = await request(`${globex.url}/strict/b`, { jar: jarB });
  assert.equal(r.status, 403, show(r));
  assert.match(r.body, /allowed email domains/);
});

test("globex's runaway rule fails its sign-in closed while acme's concurrent sign-ins succeed", async () => {
  await origin.reset();
  const runaway = login(globex, idp, new CookieJar(), '/runaway/x');
  const normal = [1, 2, 3].map((i) => loginOk(acme, idp, new CookieJar(), `/app/n${i}`));
  const [bad, ...ok] = await Promise.all([runaway, ...normal]);
  const r = bad.callback;
  assert.equal(r.status, 500, show(r));
  assert.match(r.body, /CPU budget/);
  assert.equal(setCookie(r, SESSION)?.value || '', '', 'no session for a failed sign-in');
  await waitFor(() => /"event":"login-failed","kind":"out-of-fuel","rule":"loop".*"tenant":"globex"/.test(gw.proc.output),
    { what: "globex's audit line" });
  for (const l of ok) assert.equal(l.callback.status, 302);
  assert.equal((await originSaw(origin, '/runaway/')).length, 0);
});
