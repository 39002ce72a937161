// Allowed email domains: only verified emails of a listed domain get a session.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, show, login, loginOk, originSaw } from '../lib/gateway-flow.mjs';

let stack; let idp; let origin;

before(async () => {
  stack = await startStack({ gateways: 2, gatewayOptions: { allowedEmailDomains: 'example.com' } });
  ({ idp, origin } = stack);
});
after(() => stopStack(stack));

function assertDenied(r, label) {
  assert.equal(r.status, 403, `${label}: ${show(r)}`);
  assert.match(r.headers.get('content-type') || '', /text\/html/, label);
  assert.match(r.body, /allowed email domains/i, `${label}: the page must name the rule: ${r.body.slice(0, 500)}`);
  const c = setCookie(r, SESSION);
  assert.ok(!c || isClearing(c), `${label}: no session cookie: ${JSON.stringify(r.setCookies)}`);
}

test('bob (email not verified) is refused with a 403 naming the rule; nothing forwarded', async () => {
  const gw = stack.gateways[0];
  await origin.reset();
  const jar = new CookieJar();
  const l = await login(gw, idp, jar, '/bob-page', { username: 'bob' });
  assertDenied(l.callback, 'bob@example.com unverified');
  // still no access afterwards
  const r = await request(`${gw.url}/bob-page`, { jar });
  assert.equal(r.status, 302, show(r));
  assert.equal(new URL(r.location).pathname, '/.edgeauth/login');
  assert.deepEqual(await originSaw(origin, '/bob-page'), []);
});

test('alice (verified example.com) passes', async () => {
  const gw = stack.gateways[0];
  await origin.reset();
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/alice-page');
  const r = await request(`${gw.url}/alice-page`, { jar });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(origin, '/alice-page');
  assert.equal(rec.headers['x-auth-request-email'], 'alice@example.com');
});

test('a domain list without alice\'s domain refuses alice too', async () => {
  const gw = await stack.startGateway({ allowedEmailDomains: 'other.example,example.org,mail.example.com' });
  await origin.reset();
  const jar = new CookieJar();
  const l = await login(gw, idp, jar, '/x', { username: 'alice' });
  assertDenied(l.callback, 'alice vs other.example,example.org,mail.example.com');
  assert.deepEqual(await originSaw(origin, '/x'), []);
});
