// Open-redirect defence: login return URLs (rd), redirects built from the
// request target, and logout/logged-out targets. Only same-origin relative
// paths survive; everything else becomes "/".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { show, startLogin, loginOk, SESSION } from '../lib/gateway-flow.mjs';

let stack; let gw; let idp;
// One IdP session for the whole file: after the first login the IdP answers
// at once (SSO), so each case costs a few local requests.
const idpJar = new CookieJar();

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp } = stack);
  await loginOk(gw, idp, idpJar, '/warmup');
});
after(() => stopStack(stack));

// The value the gateway sees after one percent-decoding of the query.
const HOSTILE = [
  '//evil.example', '//evil.example/', '//evil.example/path?x=1', '///evil.example', '////evil.example',
  '/\\evil.example', '\\\\evil.example', '/\\/evil.example', '\\/evil.example', '/\\\\evil.example',
  'https://evil.example', 'http://evil.example/', 'HTTPS://EVIL.EXAMPLE', 'http:evil.example', 'https:/evil.example',
  '//127.0.0.1.evil.example/', 'https://127.0.0.1@evil.example/', '//user@evil.example',
  'javascript:alert(1)', 'JavaScript:alert(1)', ' javascript:alert(1)', 'data:text/html,<script>alert(1)</script>',
  'vbscript:msgbox(1)', 'evil.example', 'evil.example/path', '.evil.example', '@evil.example',
  '/\t/evil.example', '/\n/evil.example', '/\r/evil.example', '/\x0b/evil.example', '\t//evil.example', ' //evil.example',
  '//evil.example\u3002com', '／／evil.example', '⁄⁄evil.example', '\uff0f/evil.example',
  '%2F%2Fevil.example', '%2f%2fevil.example', '%5C%5Cevil.example', '%252F%252Fevil.example',
  'http://127.0.0.1:1/', `http://127.0.0.2:${1}/`, '//127.0.0.1:1/',
  '', ' ', 'relative/path', '?x=1', '#frag', '.', '..', './../x',
];

// Must stay on the gateway, but may legitimately be kept as a (strange) path.
const SAME_ORIGIN_OK = ['/ü?e=é', '/%5Cevil.example', '/%09/evil.example', '/%0a/evil.example', '/%0d/evil.example', '/\u3000/evil.example', '/\uff0fevil.example',
  '/./\\evil.example', '/.//evil.example', '/%2F%2Fevil.example', '/%2f/evil.example', '/..//evil.example', '/a/../../\\evil.example'];

// What a browser sends (percent-encoded); raw non-ASCII may be kept (encoded) or replaced by "/".
const ALLOWED = ['/', '/x', '/deep/path/page.html', '/p?x=1&y=two%20words', '/p?next=https://evil.example', '/%C3%BC?e=%C3%A9'];

async function returnLocation(rd) {
  const jar = idpJar.clone();
  jar.delete('127.0.0.1', SESSION);
  const start = await startLogin(gw, jar, `${gw.url}/.edgeauth/login?rd=${encodeURIComponent(rd)}`, idp.issuer);
  const w = await walkIdp(jar, start.authorizeUrl, {});
  assert.ok(w.location, `IdP SSO did not return: ${w.hops.join('\n')}`);
  const cb = await request(w.location, { jar });
  assert.equal(cb.status, 302, `rd=${JSON.stringify(rd)}: ${show(cb)}`);
  return cb;
}

const isRoot = (cb) => cb.rawLocation === '/' || cb.rawLocation === `${gw.url}/`;

test('hostile return URLs after login are replaced by "/"', async () => {
  const bad = [];
  for (const rd of HOSTILE) {
    const cb = await returnLocation(rd);
    // every case: never off-site (as a browser would resolve the Location)
    assert.equal(new URL(cb.rawLocation, gw.url).origin, gw.url, `OFF-SITE for rd=${JSON.stringify(rd)}: ${cb.rawLocation}`);
    if (!isRoot(cb)) bad.push(`${JSON.stringify(rd)} -> ${JSON.stringify(cb.rawLocation)}`);
  }
  assert.deepEqual(bad, [], `return URLs not replaced by "/":\n${bad.join('\n')}`);
});

test('odd but same-origin paths never leave the gateway', async () => {
  for (const rd of SAME_ORIGIN_OK) {
    const cb = await returnLocation(rd);
    const loc = new URL(cb.rawLocation, gw.url);
    assert.equal(loc.origin, gw.url, `OFF-SITE for rd=${JSON.stringify(rd)}: ${cb.rawLocation}`);
    assert.ok(!/^[/\\]{2}|^[a-z]+:/i.test(cb.rawLocation.replace(gw.url, '')), `scheme-relative or absolute Location for ${JSON.stringify(rd)}: ${cb.rawLocation}`);
  }
});

test('same-origin relative return URLs are kept exactly', async () => {
  for (const rd of ALLOWED) {
    const cb = await returnLocation(rd);
    const loc = new URL(cb.rawLocation, gw.url);
    const want = new URL(rd, gw.url);
    assert.equal(loc.href, want.href, `rd=${JSON.stringify(rd)} -> ${cb.rawLocation}`);
  }
});

test('missing rd returns to "/"', async () => {
  const jar = idpJar.clone();
  jar.delete('127.0.0.1', SESSION);
  const start = await startLogin(gw, jar, `${gw.url}/.edgeauth/login`, idp.issuer);
  const w = await walkIdp(jar, start.authorizeUrl, {});
  const cb = await request(w.location, { jar });
  assert.ok(isRoot(cb), show(cb));
});

test('hostile request targets without a session: login redirect stays on the gateway', async () => {
  const targets = ['//evil.example/', '//evil.example/x?y=1', '/\\evil.example/', '/%2F%2Fevil.example', '/%5Cevil.example',
    '/.//evil.example', '///evil.example', '/%09/evil.example', '/x?rd=https://evil.example'];
  for (const target of targets) {
    const r = await rawRequest(gw.url, { target, headers: [['Accept', 'text/html']] });
    assert.ok(r.status === 302 || (r.status >= 400 && r.status < 500), `${target}: status ${r.status}`);
    if (r.status === 302) {
      const loc = new URL(r.header('location'), gw.url);
      assert.equal(loc.origin, gw.url, `${target} -> ${r.header('location')}`);
      assert.equal(loc.pathname, '/.edgeauth/login', `${target} -> ${r.header('location')}`);
      // finishing the login for that rd must not leave the gateway either
      const cb = await returnLocation(loc.searchParams.get('rd') ?? '/');
      assert.equal(new URL(cb.rawLocation, gw.url).origin, gw.url, `${target}: after login -> ${cb.rawLocation}`);
      assert.ok(!/^[/\\]{2}/.test(cb.rawLocation), `${target}: after login -> ${cb.rawLocation}`);
    }
  }
});

test('X-Forwarded-Host / X-Original-URL do not steer redirects', async () => {
  const r = await request(`${gw.url}/fwd?a=1`, {
    headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https', 'x-original-url': '//evil.example/', 'x-forwarded-uri': '//evil.example/' },
  });
  assert.equal(r.status, 302, show(r));
  assert.equal(new URL(r.location).origin, gw.url, show(r));
  assert.equal(new URL(r.location).searchParams.get('rd'), '/fwd?a=1');
  const jar = new CookieJar();
  const start = await request(`${gw.url}/.edgeauth/login?rd=%2F`, { jar, headers: { 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } });
  assert.equal(start.status, 302, show(start));
  assert.equal(new URL(start.location).searchParams.get('redirect_uri'), `${gw.url}/.edgeauth/callback`);
});

test('logout and logged-out never redirect off-site', async () => {
  for (const rd of ['https://evil.example/', '//evil.example', '/\\evil.example', 'javascript:alert(1)']) {
    const jar = idpJar.clone();
    jar.delete('127.0.0.1', SESSION);
    await loginOk(gw, idp, jar, '/before-logout');
    const out = await request(`${gw.url}/.edgeauth/logout?rd=${encodeURIComponent(rd)}`, { jar });
    assert.equal(out.status, 302, show(out));
    assert.equal(new URL(out.location).origin, idp.issuer, `logout must go to the IdP: ${show(out)}`);
    const w = await walkIdp(jar, out.location, { logout: true });
    assert.ok(w.location, w.hops.join('\n'));
    const back = new URL(w.location);
    assert.equal(back.origin + back.pathname, `${gw.url}/.edgeauth/logged-out`);
    const done = await request(w.location, { jar });
    if (done.status === 302) assert.ok(isRoot(done), `rd=${rd}: logged-out -> ${done.rawLocation}`);
    else assert.equal(done.status, 200, show(done));
    // re-establish the IdP session for later cases
    idpJar.delete('127.0.0.1', SESSION);
    await loginOk(gw, idp, idpJar, '/again');
  }
  for (const state of ['forged', '', 'https://evil.example', '//evil.example']) {
    const r = await request(`${gw.url}/.edgeauth/logged-out?state=${encodeURIComponent(state)}`);
    if (r.status >= 300 && r.status < 400) {
      assert.equal(new URL(r.rawLocation, gw.url).origin, gw.url, `state=${state}: ${show(r)}`);
    } else assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), show(r));
  }
});
