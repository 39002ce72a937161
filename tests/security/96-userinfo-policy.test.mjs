// Class 6 — a policy change applies to /.edgeauth/userinfo as it does to
// forwarded requests. Alice (verified example.com, admins) and bob
// (unverified, users) sign in at a gateway without policy; gateways with the
// same session keys and a stricter configuration then serve their sessions:
// the one the policy would deny at the origin gets 403 JSON from userinfo
// (no identity in it), the one it admits still gets their identity.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { sessionKey, startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, loginOk, sessionValue, jarWithSession, show } from '../lib/gateway-flow.mjs';

const keys = [sessionKey()];
let stack; const sess = {};
let gwDomains; let gwRootRule; let gwAdminOnly;

before(async () => {
  stack = await startStack({ gateways: 4, gatewayOptions: { sessionKeys: keys } });
  for (const user of ['alice', 'bob']) {
    const jar = new CookieJar();
    await loginOk(stack.gateway, stack.idp, jar, '/', { username: user });
    sess[user] = sessionValue(jar);
  }
  gwDomains = await stack.startGateway({ sessionKeys: keys, allowedEmailDomains: 'example.com' });
  // Every path of the app needs the admins group.
  gwRootRule = await stack.startGateway({ sessionKeys: keys, vars: { routes: JSON.stringify([{ path: '/public/', public: true }, { path: '/*', allowed_groups: ['admins'] }]) } });
  // Only one part of the app needs it: everyone else still uses the rest.
  gwAdminOnly = await stack.startGateway({ sessionKeys: keys, vars: { routes: JSON.stringify([{ path: '/admin/', allowed_groups: ['admins'] }]) } });
});
after(() => stopStack(stack));

async function userinfo(gw, user) {
  const r = await request(`${gw.url}/.edgeauth/userinfo`, { jar: jarWithSession(sess[user]), accept: 'application/json' });
  let body = null;
  try { body = JSON.parse(r.body); } catch { /* checked below */ }
  return { r, body };
}

async function page(gw, user, p = '/app') {
  return request(`${gw.url}${p}`, { jar: jarWithSession(sess[user]) });
}

function assertRefused({ r, body }, label) {
  assert.equal(r.status, 403, `${label}: userinfo must refuse a person the policy denies\n${show(r)}`);
  assert.match(r.headers.get('content-type') || '', /application\/json/, `${label}: JSON`);
  assert.ok(body && typeof body.error === 'string' && typeof body.message === 'string', `${label}: {error, message}: ${r.body}`);
  assert.ok(!('sub' in body) && !('email' in body) && !/bob@|alice@/.test(r.body), `${label}: no identity in the refusal: ${r.body}`);
  assert.ok(!(r.setCookies || []).some((c) => c.startsWith(`${SESSION}=`) && !/Max-Age=0/i.test(c)), `${label}: no new session`);
}

test('email-domain policy: bob (unverified) is refused at userinfo as at the origin; alice still gets hers', async () => {
  assert.equal((await page(gwDomains, 'bob')).status, 403, 'the origin is closed to bob');
  assertRefused(await userinfo(gwDomains, 'bob'), 'bob, allowed_email_domains=example.com');
  const alice = await userinfo(gwDomains, 'alice');
  assert.equal(alice.r.status, 200, show(alice.r));
  assert.equal(alice.body.sub, 'alice');
  assert.equal(alice.body.email, 'alice@example.com');
});

test('a route rule covering the whole app: bob is refused at userinfo; alice (admins) is not', async () => {
  assert.equal((await page(gwRootRule, 'bob')).status, 403, 'the origin is closed to bob');
  assertRefused(await userinfo(gwRootRule, 'bob'), 'bob, /* needs admins');
  const alice = await userinfo(gwRootRule, 'alice');
  assert.equal(alice.r.status, 200, show(alice.r));
  assert.equal(alice.body.sub, 'alice');
});

test('a rule for one part of the app only: bob keeps his userinfo (he may use the rest)', async () => {
  assert.equal((await page(gwAdminOnly, 'bob', '/admin/x')).status, 403);
  assert.equal((await page(gwAdminOnly, 'bob', '/app')).status, 200);
  const bob = await userinfo(gwAdminOnly, 'bob');
  assert.equal(bob.r.status, 200, show(bob.r));
  assert.equal(bob.body.sub, 'bob');
});

test('the gateway the sessions came from still answers both', async () => {
  for (const user of ['alice', 'bob']) {
    const { r, body } = await userinfo(stack.gateway, user);
    assert.equal(r.status, 200, show(r));
    assert.equal(body.sub, user);
  }
});
