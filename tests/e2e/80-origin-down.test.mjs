// Origin or IdP down: quick 5xx with a short page, never a hang, never identity.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { freePort } from '../lib/procs.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { show, loginOk } from '../lib/gateway-flow.mjs';

let stack; let gw; let idp;

before(async () => {
  const closed = await freePort('127.0.0.1'); // nothing listens there
  stack = await startStack({ gateways: 2, gatewayOptions: { originUrl: `http://127.0.0.1:${closed}` } });
  ({ gateway: gw, idp } = stack);
});
after(() => stopStack(stack));

test('origin down: 502, short page, quickly', async () => {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/down');
  for (const accept of ['text/html', 'application/json']) {
    const t0 = Date.now();
    const r = await request(`${gw.url}/down?q=1`, { jar, accept, timeoutMs: 20000 });
    const ms = Date.now() - t0;
    assert.equal(r.status, 502, `${accept}: ${show(r)}`);
    assert.ok(ms < 5000, `502 took ${ms} ms`);
    assert.ok(r.body.length < 4096, `error page should be short (${r.body.length} bytes)`);
    assert.doesNotMatch(r.body, /panic|backtrace|stack|eyJ[A-Za-z0-9_-]{10,}|edgeauth-dev-secret/i, r.body);
    assert.equal(r.headers.get('x-origin'), null);
  }
  // the gateway itself is still healthy
  assert.equal((await request(`${gw.url}/.edgeauth/health`)).status, 200);
});

test('IdP down: sign-in start fails fast with a 5xx page; protected paths stay closed', async () => {
  const closedIdp = await freePort('127.0.0.2');
  const g = await stack.startGateway({ issuer: `http://127.0.0.2:${closedIdp}` });
  const t0 = Date.now();
  const r = await request(`${g.url}/.edgeauth/login?rd=%2F`, { timeoutMs: 20000 });
  assert.ok(r.status >= 500 && r.status < 600, show(r));
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  assert.equal(r.location, null);
  assert.ok(!r.setCookies.some((c) => c.startsWith('edgeauth_session=')), JSON.stringify(r.setCookies));
  assert.doesNotMatch(r.body, /panic|backtrace|edgeauth-dev-secret/i);
  const api = await request(`${g.url}/x`, { accept: 'application/json' });
  assert.equal(api.status, 401, show(api));
  const cb = await request(`${g.url}/.edgeauth/callback?code=abc&state=def`);
  assert.ok(cb.status >= 400 && cb.status < 600, show(cb));
  assert.ok(!cb.setCookies.some((c) => c.startsWith('edgeauth_session=')));
});
