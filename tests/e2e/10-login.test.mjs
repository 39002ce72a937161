// Sign-in through the real host + IdP, identity to the origin, pass-through.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request, rawRequest, setCookie, isClearing } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import {
  SESSION, LOGIN, show, expectLoginRedirect, startLogin, loginOk, verifyAssertion, originSaw,
} from '../lib/gateway-flow.mjs';

let stack; let gw; let idp; let origin;
const alice = new CookieJar(); // signed in once, reused by the tests below

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp, origin } = stack);
});
after(() => stopStack(stack));

test('health and JWKS', async () => {
  const h = await request(`${gw.url}/.edgeauth/health`);
  assert.equal(h.status, 200, show(h));
  const j = await request(`${gw.url}/.edgeauth/jwks.json`, { accept: 'application/json' });
  assert.equal(j.status, 200, show(j));
  const { keys } = JSON.parse(j.body);
  const key = gw.assertionKeys[0];
  const pub = keys.find((k) => k.kid === key.kid);
  assert.ok(pub, `JWKS must publish kid ${key.kid}: ${j.body}`);
  assert.equal(pub.kty, 'OKP');
  assert.equal(pub.crv, 'Ed25519');
  assert.equal(pub.x, key.publicJwk.x, 'published key must be the public half of the configured seed');
  assert.equal(pub.d, undefined, 'JWKS must not contain private material');
});

test('browser without session: 302 to /.edgeauth/login with the original path+query as rd', async () => {
  const paths = ['/', '/some/page', '/some/page?x=1&y=two%20words', '/ab?q=%26&r=%3D%2F', '/ü/ñ?e=é', '/a%20b/c%3Dd'];
  for (const p of paths) {
    const { rd } = await expectLoginRedirect(gw, new CookieJar(), p);
    const want = new URL(p, gw.url);
    assert.equal(rd, want.pathname + want.search, `rd for ${p}`);
  }
  // no Accept header at all, or */*, is a browser too
  for (const headers of [[], [['Accept', '*/*']]]) {
    const r = await rawRequest(gw.url, { target: '/x?y=1', headers });
    assert.equal(r.status, 302, `${JSON.stringify(headers)}: ${r.status}`);
    assert.equal(new URL(r.header('location'), gw.url).pathname, '/.edgeauth/login');
  }
  assert.deepEqual(await originSaw(origin, '/'), [], 'nothing may reach the origin without a session');
});

test('ambiguous encoded paths (%2F, %5C) fail closed: 302 to login or 400, never forwarded', async () => {
  await origin.reset();
  for (const p of ['/a%2Fb', '/a%2fb?x=1', '/a%5Cb', '/%2F%2Fevil.example']) {
    const r = await request(gw.url + p, { jar: new CookieJar() });
    if (r.status === 302) {
      assert.equal(new URL(r.location).origin, gw.url, show(r));
      assert.equal(new URL(r.location).pathname, '/.edgeauth/login', show(r));
    } else assert.equal(r.status, 400, show(r));
  }
  assert.deepEqual(await originSaw(origin, '/'), [], 'nothing may reach the origin without a session');
  // with a session: either forwarded byte-for-byte or refused with 400
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/enc-check');
  for (const p of ['/a%2Fb', '/a%5Cb?x=1']) {
    await origin.reset();
    const r = await request(gw.url + p, { jar });
    const seen = await originSaw(origin, '/');
    if (r.status === 400) assert.deepEqual(seen, [], p);
    else {
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(seen.map((x) => x.url), [p]);
    }
  }
});

test('API client without session: 401 JSON unauthenticated, no redirect', async () => {
  for (const method of ['GET', 'POST', 'DELETE']) {
    const r = await request(`${gw.url}/api/things`, {
      method, accept: 'application/json', body: method === 'POST' ? '{}' : undefined,
      headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
    });
    assert.equal(r.status, 401, `${method}: ${show(r)}`);
    assert.equal(r.location, null);
    assert.match(r.headers.get('content-type') || '', /json/);
    assert.equal(JSON.parse(r.body).error, 'unauthenticated');
  }
  assert.deepEqual(await originSaw(origin, '/api'), []);
});

test('login start: authorization request and login cookie', async () => {
  const jar = new CookieJar();
  const { loginUrl } = await expectLoginRedirect(gw, jar, '/start?z=1');
  const { res, params } = await startLogin(gw, jar, loginUrl, idp.issuer);
  const disco = await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json();
  const auth = new URL(res.location);
  assert.equal(auth.origin + auth.pathname, disco.authorization_endpoint);
  assert.equal(params.get('response_type'), 'code');
  assert.equal(params.get('client_id'), 'edgeauth');
  assert.equal(params.get('redirect_uri'), `${gw.url}/.edgeauth/callback`);
  assert.ok(params.get('scope').split(' ').includes('openid'), params.get('scope'));
  assert.ok((params.get('state') || '').length >= 16, 'state must be unguessable');
  assert.ok((params.get('nonce') || '').length >= 16, 'nonce must be unguessable');
  assert.match(params.get('code_challenge') || '', /^[A-Za-z0-9_-]{43}$/);
  assert.equal(params.get('code_challenge_method'), 'S256');
  const c = setCookie(res, LOGIN);
  assert.ok(c, `login must set ${LOGIN}: ${show(res)}`);
  assert.equal(c.httpOnly, true, c.raw);
  assert.equal((c.sameSite || '').toLowerCase(), 'lax', c.raw);
  assert.equal(c.path, '/.edgeauth/', c.raw);
  assert.ok(c.maxAge > 0 && c.maxAge <= 3600, `short Max-Age: ${c.raw}`);
  assert.equal(c.secure, false, `no Secure on loopback http: ${c.raw}`);
  // two logins get different state, nonce and PKCE values
  const again = await startLogin(gw, new CookieJar(), loginUrl, idp.issuer);
  for (const k of ['state', 'nonce', 'code_challenge']) assert.notEqual(again.params.get(k), params.get(k), k);
});

test('alice signs in and lands on the original URL (with query)', async () => {
  const path = '/landing/page?x=1&y=two%20words';
  const l = await loginOk(gw, idp, alice, path);
  const r = l.callback;
  assert.equal(r.location, `${gw.url}${path}`, show(r));
  const s = setCookie(r, SESSION);
  assert.equal(s.httpOnly, true, s.raw);
  assert.equal((s.sameSite || '').toLowerCase(), 'lax', s.raw);
  assert.equal(s.path, '/', s.raw);
  assert.equal(s.secure, false, s.raw);
  assert.ok(!s.attrs.domain, `session cookie must be host-only: ${s.raw}`);
  assert.ok(isClearing(setCookie(r, LOGIN)), `callback must clear ${LOGIN}: ${JSON.stringify(r.setCookies)}`);

  await origin.reset();
  const page = await request(r.location, { jar: alice });
  assert.equal(page.status, 200, show(page));
  assert.equal(page.headers.get('x-origin'), 'yes');
  assert.match(page.body, /Alice Example/);
  const [seen] = await originSaw(origin, '/landing');
  assert.equal(seen.method, 'GET');
  assert.equal(seen.url, path);
});

test('origin receives identity headers and a verifiable assertion', async () => {
  await origin.reset();
  const t0 = Math.floor(Date.now() / 1000);
  const r = await request(`${gw.url}/who`, { jar: alice });
  assert.equal(r.status, 200, show(r));
  const [seen] = await originSaw(origin, '/who');
  const h = seen.headers;
  assert.equal(h['x-auth-request-user'], 'alice');
  assert.equal(h['x-auth-request-email'], 'alice@example.com');
  assert.equal(h['x-auth-request-groups'], 'admins,devs');
  assert.ok(h['x-edgeauth-assertion'], 'assertion header missing');
  const { payload, protectedHeader } = await verifyAssertion(gw, origin.url, h['x-edgeauth-assertion']);
  assert.equal(protectedHeader.alg, 'EdDSA');
  assert.equal(protectedHeader.kid, gw.assertionKeys[0].kid);
  assert.equal(payload.iss, gw.url);
  assert.equal(payload.aud, origin.url);
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.email, 'alice@example.com');
  assert.equal(payload.email_verified, true);
  assert.equal(payload.name, 'Alice Example');
  assert.deepEqual(payload.groups, ['admins', 'devs']);
  assert.equal(payload.exp - payload.iat, 60);
  assert.ok(Math.abs(payload.iat - t0) <= 5, `iat ${payload.iat} vs now ${t0}`);
  // a forged assertion (payload changed) does not verify
  const [hd, , sig] = h['x-edgeauth-assertion'].split('.');
  const forged = `${hd}.${Buffer.from(JSON.stringify({ ...payload, sub: 'mallory' })).toString('base64url')}.${sig}`;
  await assert.rejects(verifyAssertion(gw, origin.url, forged));
});

test('userinfo: identity with a session, 401 without', async () => {
  const r = await request(`${gw.url}/.edgeauth/userinfo`, { jar: alice, accept: 'application/json' });
  assert.equal(r.status, 200, show(r));
  const u = JSON.parse(r.body);
  assert.equal(u.sub, 'alice');
  assert.equal(u.email, 'alice@example.com');
  assert.ok(!/eyJ[A-Za-z0-9_-]+\.eyJ/.test(r.body), 'userinfo must not expose tokens');
  const n = await request(`${gw.url}/.edgeauth/userinfo`, { accept: 'application/json' });
  assert.equal(n.status, 401, show(n));
});

test('method, path, query and body are forwarded unchanged', async () => {
  await origin.reset();
  const body = JSON.stringify({ hello: 'wörld', n: 7 });
  const r = await request(`${gw.url}/api/items/7?q=a%20b&q=c&e=%C3%A9`, {
    jar: alice, method: 'PUT', accept: 'application/json',
    headers: { 'content-type': 'application/json', 'x-client-thing': 'kept' }, body,
  });
  assert.equal(r.status, 200, show(r));
  const [seen] = await originSaw(origin, '/api/items');
  assert.equal(seen.method, 'PUT');
  assert.equal(seen.url, '/api/items/7?q=a%20b&q=c&e=%C3%A9');
  assert.equal(seen.body, body);
  assert.equal(seen.headers['content-type'], 'application/json');
  assert.equal(seen.headers['x-client-thing'], 'kept');
  for (const method of ['DELETE', 'PATCH', 'POST']) {
    const x = await request(`${gw.url}/api/m`, { jar: alice, method, accept: 'application/json', body: method === 'DELETE' ? undefined : 'b' });
    assert.equal(x.status, 200, `${method}: ${show(x)}`);
    assert.equal(JSON.parse(x.body).method, method);
  }
});

test('gateway cookies never reach the origin; other cookies do', async () => {
  await origin.reset();
  const jar = alice.clone();
  jar.set('127.0.0.1', 'app_pref', 'dark');
  jar.set('127.0.0.1', 'edgeauth_login', 'planted');
  jar.set('127.0.0.1', 'edgeauth_other', 'x');
  jar.set('127.0.0.1', 'zz', '1');
  const r = await request(`${gw.url}/cookies`, { jar });
  assert.equal(r.status, 200, show(r));
  const [seen] = await originSaw(origin, '/cookies');
  const cookie = seen.headers.cookie || '';
  assert.doesNotMatch(cookie, /edgeauth_/i, `origin saw: ${cookie}`);
  assert.match(cookie, /(^|; ?)app_pref=dark(;|$)/, `origin saw: ${cookie}`);
  assert.match(cookie, /(^|; ?)zz=1(;|$)/, `origin saw: ${cookie}`);
});

test('origin responses pass back unchanged (status, headers, body, redirects, cookies)', async () => {
  for (const code of [200, 201, 204, 404, 418, 500, 503]) {
    const r = await request(`${gw.url}/status/${code}`, { jar: alice });
    assert.equal(r.status, code, show(r));
    assert.equal(r.headers.get('x-origin'), 'yes');
    if (code !== 204) {
      assert.equal(r.headers.get('x-custom-one'), 'one');
      assert.equal(r.headers.get('x-custom-two'), 'two, three');
      assert.equal(r.headers.get('etag'), '"origin-etag-1"');
      assert.equal(r.headers.get('cache-control'), 'private, max-age=7');
      assert.equal(r.body, `status ${code} from origin\n`);
    }
  }
  const red = await request(`${gw.url}/redirect`, { jar: alice });
  assert.equal(red.status, 302);
  assert.equal(red.rawLocation, '/landed?from=origin');
  const sc = await request(`${gw.url}/set-cookie`, { jar: alice });
  assert.deepEqual(sc.setCookies, ['app_pref=dark; Path=/; HttpOnly', 'app_lang=en; Path=/']);
});

test('a ~5 MB request body is streamed to the origin and back intact', async () => {
  await origin.reset();
  const body = crypto.randomBytes(5 * 1024 * 1024 + 123);
  const sha = crypto.createHash('sha256').update(body).digest('hex');
  const r = await fetch(`${gw.url}/echo`, {
    method: 'POST', body, redirect: 'manual',
    headers: { cookie: alice.header(`${gw.url}/echo`), 'content-type': 'application/octet-stream', accept: 'application/octet-stream' },
  });
  assert.equal(r.status, 200);
  const back = Buffer.from(await r.arrayBuffer());
  assert.equal(back.length, body.length);
  assert.equal(crypto.createHash('sha256').update(back).digest('hex'), sha);
  // chunked upload (no content-length)
  const chunks = 80;
  const chunk = crypto.randomBytes(64 * 1024);
  const stream = new ReadableStream({
    i: 0,
    pull(ctrl) { if (this.i++ < chunks) ctrl.enqueue(chunk); else ctrl.close(); },
  });
  const r2 = await fetch(`${gw.url}/echo`, {
    method: 'POST', body: stream, duplex: 'half', redirect: 'manual',
    headers: { cookie: alice.header(`${gw.url}/echo`), 'content-type': 'application/octet-stream' },
  });
  assert.equal(r2.status, 200);
  assert.equal(Buffer.from(await r2.arrayBuffer()).length, chunks * chunk.length);
  const seen = await originSaw(origin, '/echo');
  assert.equal(seen[0].bodyLength, body.length);
  assert.equal(seen[0].bodySha256, sha);
  assert.equal(seen[1].bodyLength, chunks * chunk.length);
});
