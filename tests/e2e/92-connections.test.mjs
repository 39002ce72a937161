// Connections end to end: one tenant, two real OpenID providers (social and
// enterprise, tests/lib/federation.mjs), the chooser, `?connection=`,
// home-realm discovery by email domain, namespaced subjects at the origin;
// and the single-IdP configuration of before, unchanged.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, setCookie } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, show, loginOk, verifyAssertion } from '../lib/gateway-flow.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import {
  ENTERPRISE_DOMAIN, TENANT_NAME, callbackPath, loginUrl, readChooser, startFederation, toCallback,
} from '../lib/federation.mjs';

/** The assertion claim holding the provider's own subject. */
const RAW_SUB = 'idp_sub';

let fed; let gw; let gwOne;

before(async () => {
  fed = await startFederation({ gateways: 2 });
  gw = fed.gateway;
  // The same tenant with only its enterprise connection listed.
  gwOne = await fed.startGateway({ vars: { connections: JSON.stringify([fed.connections[1]]) } });
});
after(() => fed?.stop());

/** GET a protected path without a session and follow to the login page. */
async function openChooser(jar, path) {
  const first = await request(gw.url + path, { jar });
  assert.equal(first.status, 302, show(first));
  const login = new URL(first.location);
  assert.equal(login.pathname, '/.edgeauth/login', show(first));
  const page = await request(login.href, { jar });
  return { first, page, chooser: readChooser(page.body) };
}

/** What the origin received for a request made now with `jar`. */
async function atOrigin(jar, path) {
  await fed.origin.reset();
  const r = await request(gw.url + path, { jar });
  assert.equal(r.status, 200, show(r));
  const [seen] = (await fed.origin.requests()).filter((x) => x.url === path);
  assert.ok(seen, `the origin did not see ${path}`);
  const { payload } = await verifyAssertion(gw, fed.origin.url, seen.headers['x-edgeauth-assertion']);
  return { headers: seen.headers, assertion: payload };
}

test('several connections: the chooser lists the tenant\'s connections, in order, under its name', async () => {
  const { page, chooser } = await openChooser(new CookieJar(), '/reports?q=1&y=two');
  assert.equal(page.status, 200, show(page));
  assert.match(page.headers.get('content-type'), /^text\/html/);
  assert.equal(page.headers.get('cache-control'), 'no-store');
  assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  assert.equal(chooser.heading, `Sign in to ${TENANT_NAME}`);
  assert.deepEqual(chooser.buttons.map((b) => [b.id, b.label, b.method, b.action]), [
    ['social', 'Continue with Social Login', 'get', '/.edgeauth/login'],
    ['enterprise', 'Continue with Acme Corp SSO', 'get', '/.edgeauth/login'],
  ]);
  assert.ok(chooser.emailField, 'a work-email field: the enterprise connection has email domains');
  assert.deepEqual([...new Set(chooser.rds)], ['/reports?q=1&y=two'], 'every form carries the return path');
  assert.equal(chooser.notice, null);
  assert.deepEqual(page.setCookies, [], 'showing the chooser starts no login');
});

test('each connection signs in to the origin as its own, namespaced person', async () => {
  const seen = {};
  for (const [id, idp, email, name] of [
    ['social', fed.social, 'alice@example.com', 'Alice Example'],
    ['enterprise', fed.enterprise, `alice@${ENTERPRISE_DOMAIN}`, 'Alice Acme'],
  ]) {
    const jar = new CookieJar();
    const { chooser } = await openChooser(jar, `/inbox/${id}?tab=1`);
    const button = chooser.buttons.find((b) => b.id === id);
    // What the browser sends when the button is pressed: the form's fields.
    const press = new URL(button.action, gw.url);
    press.search = new URLSearchParams({ rd: chooser.rds[0], connection: id });
    const flow = await toCallback(jar, press.href, idp);
    assert.equal(flow.authorize.searchParams.get('redirect_uri'), `${gw.url}${callbackPath(id)}`);
    assert.equal(flow.callbackUrl.origin + flow.callbackUrl.pathname, `${gw.url}${callbackPath(id)}`);
    const cb = await request(flow.callbackUrl.href, { jar });
    assert.equal(cb.status, 302, show(cb));
    assert.ok(setCookie(cb, SESSION)?.value, `${id}: a session\n${show(cb)}`);
    assert.equal(new URL(cb.location).pathname + new URL(cb.location).search, `/inbox/${id}?tab=1`, 'back where the person was going');
    const { headers, assertion } = await atOrigin(jar, `/inbox/${id}?tab=1`);
    assert.equal(headers['x-auth-request-user'], `${id}|alice`);
    assert.equal(headers['x-auth-request-email'], email);
    assert.equal(assertion.sub, `${id}|alice`);
    assert.equal(assertion[RAW_SUB], 'alice', `the provider's own subject is in the assertion: ${JSON.stringify(assertion)}`);
    assert.equal(assertion.email, email);
    assert.equal(assertion.name ?? name, name);
    seen[id] = assertion.sub;
  }
  assert.notEqual(seen.social, seen.enterprise, 'the same raw subject at two providers is two people');
});

test('?connection= skips the chooser; one that does not exist gets the chooser with 400', async () => {
  const r = await request(loginUrl(gw, { connection: 'enterprise', rd: '/x' }), { jar: new CookieJar() });
  assert.equal(r.status, 302, show(r));
  assert.equal(new URL(r.location).origin, new URL(fed.enterprise.issuer).origin, show(r));
  assert.ok(setCookie(r, 'edgeauth_login')?.value, 'the login cookie');

  for (const bad of ['nope', 'SOCIAL', 'social|x', '../social', 'default']) {
    const p = await request(loginUrl(gw, { connection: bad, rd: '/kept' }), { jar: new CookieJar() });
    assert.equal(p.status, 400, `${bad}\n${show(p)}`);
    const c = readChooser(p.body);
    assert.deepEqual(c.buttons.map((b) => b.id), ['social', 'enterprise'], bad);
    assert.match(c.notice ?? '', /does not exist/, bad);
    assert.deepEqual([...new Set(c.rds)], ['/kept'], bad);
    assert.deepEqual(p.setCookies, [], bad);
  }
});

test('home-realm discovery: a work email goes straight to its provider with login_hint', async () => {
  for (const [param, typed, hint] of [['email', 'Carol@ACME.test', `Carol@${ENTERPRISE_DOMAIN}`], ['login_hint', `carol@${ENTERPRISE_DOMAIN}.`, `carol@${ENTERPRISE_DOMAIN}`]]) {
    const jar = new CookieJar();
    const r = await request(loginUrl(gw, { [param]: typed, rd: '/hr?x=1' }), { jar });
    assert.equal(r.status, 302, `${param}=${typed}\n${show(r)}`);
    const authorize = new URL(r.location);
    assert.equal(authorize.origin, new URL(fed.enterprise.issuer).origin, show(r));
    assert.equal(authorize.searchParams.get('login_hint'), hint, 'the provider gets the address, domain normalized');
    const walk = await walkIdp(jar, authorize.href, { username: 'carol', password: 'carol-pw' });
    const cb = await request(walk.location, { jar });
    assert.equal(cb.status, 302, show(cb));
    assert.equal(new URL(cb.location).pathname + new URL(cb.location).search, '/hr?x=1');
    const { assertion } = await atOrigin(jar, '/hr?x=1');
    assert.equal(assertion.sub, 'enterprise|carol');
  }
});

test('home-realm discovery: a domain with no connection returns to the chooser and says so', async () => {
  const r = await request(loginUrl(gw, { email: 'someone@Example.COM', rd: '/kept?a=1' }), { jar: new CookieJar() });
  assert.equal(r.status, 200, show(r));
  const c = readChooser(r.body);
  assert.equal(c.notice, 'No single sign-in is set up for example.com; choose how to sign in.');
  assert.deepEqual(c.buttons.map((b) => b.id), ['social', 'enterprise']);
  assert.deepEqual([...new Set(c.rds)], ['/kept?a=1']);
  assert.match(r.body, /value="someone@Example.COM"/, 'the address stays in the field');
  // Not an address at all: 400, the field marked.
  const bad = await request(loginUrl(gw, { email: 'not-an-address', rd: '/' }), { jar: new CookieJar() });
  assert.equal(bad.status, 400, show(bad));
  assert.match(bad.body, /aria-invalid="true"/);
});

test('the return URL survives the chooser, validated as before', async () => {
  for (const [rd, kept] of [['/a/b?c=d&e=%2F', '/a/b?c=d&e=%2F'], ['//evil.example/x', '/'], ['https://evil.example', '/'], ['/\\evil', '/']]) {
    const p = await request(loginUrl(gw, { rd }), { jar: new CookieJar() });
    assert.equal(p.status, 200, show(p));
    assert.deepEqual([...new Set(readChooser(p.body).rds)], [kept], rd);
    assert.doesNotMatch(p.body, /evil\.example/, rd);
  }
});

test('a tenant with one connection goes straight to it, at its own callback', async () => {
  const jar = new CookieJar();
  const first = await request(`${gwOne.url}/only`, { jar });
  assert.equal(first.status, 302, show(first));
  const flow = await toCallback(jar, first.location, fed.enterprise);
  assert.equal(flow.callbackUrl.pathname, callbackPath('enterprise'));
  const cb = await request(flow.callbackUrl.href, { jar });
  assert.equal(cb.status, 302, show(cb));
  const who = await request(`${gwOne.url}/.edgeauth/userinfo`, { jar, accept: 'application/json' });
  assert.equal(JSON.parse(who.body).sub, 'enterprise|alice');
});

test('the single-IdP configuration behaves as before: no chooser, /.edgeauth/callback, raw subjects', async () => {
  const stack = await startStack();
  try {
    const jar = new CookieJar();
    const l = await loginOk(stack.gateway, stack.idp, jar, '/legacy?x=1');
    assert.equal(l.start.params.get('redirect_uri'), `${stack.gateway.url}/.edgeauth/callback`);
    assert.equal(l.start.params.get('login_hint'), null);
    await stack.origin.reset();
    const r = await request(`${stack.gateway.url}/legacy?x=1`, { jar });
    assert.equal(r.status, 200, show(r));
    const [seen] = await stack.origin.requests();
    assert.equal(seen.headers['x-auth-request-user'], 'alice');
    const { payload } = await verifyAssertion(stack.gateway, stack.origin.url, seen.headers['x-edgeauth-assertion']);
    assert.equal(payload.sub, 'alice');
    // An email in the link changes nothing with one provider (beyond the hint).
    const hinted = await request(`${stack.gateway.url}/.edgeauth/login?email=x%40example.com`, { jar: new CookieJar() });
    assert.equal(hinted.status, 302, show(hinted));
    assert.equal(new URL(hinted.location).origin, new URL(stack.idp.issuer).origin);
  } finally {
    await stopStack(stack);
  }
});
