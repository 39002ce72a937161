// The callback fails closed: replayed state, replayed code, forged state,
// missing login cookie, IdP errors; a planted session cookie does not survive.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import {
  SESSION, LOGIN, show, login, loginOk, startLogin, expectLoginRedirect, sessionValue, originSaw,
} from '../lib/gateway-flow.mjs';

let stack; let gw; let idp; let origin;

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp, origin } = stack);
});
after(() => stopStack(stack));

function assertNoSessionIssued(r, label) {
  const c = setCookie(r, SESSION);
  assert.ok(!c || isClearing(c), `${label}: must not issue a session cookie\n${show(r)}`);
  if (r.status >= 300 && r.status < 400) assert.equal(new URL(r.location).origin === gw.url || new URL(r.location).origin === idp.issuer, true, `${label}: ${show(r)}`);
}

/** Start a login and walk the IdP; return the callback URL not yet visited, and the jar holding the login cookie. */
async function pendingCallback(jar, { username = 'alice', abort = false } = {}) {
  const { loginUrl } = await expectLoginRedirect(gw, jar, '/cb-test');
  const start = await startLogin(gw, jar, loginUrl, idp.issuer);
  const w = await walkIdp(jar, start.authorizeUrl, abort ? { abort: true } : { username, password: `${username}-pw` });
  assert.ok(w.location, w.hops.join('\n'));
  return { url: new URL(w.location), state: start.params.get('state') };
}

test('replayed callback (same state + login cookie) after a successful login: 400', async () => {
  const jar = new CookieJar();
  const l = await loginOk(gw, idp, jar, '/replay');
  const replay = await request(l.callbackUrl, { jar: l.jarBeforeCallback });
  assert.equal(replay.status, 400, `replay: ${show(replay)}`);
  assertNoSessionIssued(replay, 'replay');
});

test('authorization code replayed into a fresh login flow: 4xx, no session', async () => {
  const jar = new CookieJar();
  const first = await loginOk(gw, idp, jar, '/first');
  const code = new URL(first.callbackUrl).searchParams.get('code');
  // fresh flow in a clean browser: new state + login cookie, then swap in the used code
  const jar2 = new CookieJar();
  const p = await pendingCallback(jar2, { username: 'bob' });
  p.url.searchParams.set('code', code);
  const r = await request(p.url.href, { jar: jar2 });
  assert.ok(r.status >= 400 && r.status < 500, `swapped code: ${show(r)}`);
  assertNoSessionIssued(r, 'swapped code');
  assert.match(r.headers.get('content-type') || '', /html/, 'a page a person can read');
  // the swapped-in (already used) code must not give alice's session to the second browser
  const who = await request(`${gw.url}/.edgeauth/userinfo`, { jar: jar2, accept: 'application/json' });
  assert.equal(who.status, 401, show(who));
});

test('forged state, missing login cookie, missing code: 4xx, no session', async () => {
  const cases = {
    'state not matching the login cookie': async () => {
      const jar = new CookieJar();
      const p = await pendingCallback(jar);
      p.url.searchParams.set('state', `${p.state}x`);
      return request(p.url.href, { jar });
    },
    'no login cookie': async () => {
      const jar = new CookieJar();
      const p = await pendingCallback(jar);
      jar.delete('127.0.0.1', LOGIN);
      return request(p.url.href, { jar });
    },
    'login cookie of another flow': async () => {
      const jarA = new CookieJar();
      const a = await pendingCallback(jarA);
      const jarB = new CookieJar();
      await pendingCallback(jarB);
      jarA.set('127.0.0.1', LOGIN, jarB.get('127.0.0.1', LOGIN).value, '/.edgeauth/');
      return request(a.url.href, { jar: jarA });
    },
    'tampered login cookie': async () => {
      const jar = new CookieJar();
      const p = await pendingCallback(jar);
      const c = jar.get('127.0.0.1', LOGIN);
      const i = Math.floor(c.value.length / 2);
      c.value = c.value.slice(0, i) + (c.value[i] === 'A' ? 'B' : 'A') + c.value.slice(i + 1);
      return request(p.url.href, { jar });
    },
    'no code': async () => {
      const jar = new CookieJar();
      const p = await pendingCallback(jar);
      p.url.searchParams.delete('code');
      return request(p.url.href, { jar });
    },
    'no state': async () => {
      const jar = new CookieJar();
      const p = await pendingCallback(jar);
      p.url.searchParams.delete('state');
      return request(p.url.href, { jar });
    },
    'bare callback': async () => request(`${gw.url}/.edgeauth/callback`, { jar: new CookieJar() }),
  };
  for (const [label, run] of Object.entries(cases)) {
    const r = await run();
    assert.ok(r.status >= 400 && r.status < 500, `${label}: ${show(r)}`);
    assertNoSessionIssued(r, label);
  }
});

test('callback with a foreign iss parameter (RFC 9207) is refused', async () => {
  const jar = new CookieJar();
  const p = await pendingCallback(jar);
  p.url.searchParams.set('iss', 'http://127.0.0.9:1');
  const r = await request(p.url.href, { jar });
  assert.ok(r.status >= 400 && r.status < 500, show(r));
  assertNoSessionIssued(r, 'foreign iss');
});

test('IdP error=access_denied: 403 page that says sign-in was cancelled/denied', async () => {
  await origin.reset();
  const jar = new CookieJar();
  const p = await pendingCallback(jar, { abort: true });
  assert.equal(p.url.searchParams.get('error'), 'access_denied');
  const r = await request(p.url.href, { jar });
  assert.equal(r.status, 403, show(r));
  assert.match(r.headers.get('content-type') || '', /text\/html/);
  assert.match(r.body, /cancel|denied/i, `page must tell the person: ${r.body.slice(0, 500)}`);
  assertNoSessionIssued(r, 'access_denied');
  assert.doesNotMatch(r.body, /<script/i);
  assert.deepEqual(await originSaw(origin, '/'), []);
});

test('IdP error with forged state or injected description does not reflect markup', async () => {
  const r = await request(`${gw.url}/.edgeauth/callback?error=access_denied&error_description=${encodeURIComponent('<script>alert(1)</script>')}&state=forged`);
  assert.ok(r.status >= 400 && r.status < 500, show(r));
  assert.ok(!r.body.includes('<script>alert(1)</script>'), 'error_description reflected unescaped');
  assertNoSessionIssued(r, 'forged error callback');
});

test('a session cookie planted before login does not survive it (fixation)', async () => {
  const jar = new CookieJar();
  jar.set('127.0.0.1', SESSION, 'attacker-chosen-value');
  const l = await login(gw, idp, jar, '/fix');
  assert.equal(l.callback.status, 302, show(l.callback));
  const v = sessionValue(jar);
  assert.ok(v && v !== 'attacker-chosen-value', 'a new session cookie must be issued');
  const r = await request(`${gw.url}/fix`, { jar });
  assert.equal(r.status, 200, show(r));
});

test('two browsers signing in at once do not get each other\'s identity', async () => {
  const [a, b] = await Promise.all([
    (async () => { const j = new CookieJar(); await loginOk(gw, idp, j, '/a', { username: 'alice' }); return j; })(),
    (async () => { const j = new CookieJar(); await loginOk(gw, idp, j, '/b', { username: 'bob' }); return j; })(),
  ]);
  const ua = JSON.parse((await request(`${gw.url}/.edgeauth/userinfo`, { jar: a, accept: 'application/json' })).body);
  const ub = JSON.parse((await request(`${gw.url}/.edgeauth/userinfo`, { jar: b, accept: 'application/json' })).body);
  assert.equal(ua.sub, 'alice');
  assert.equal(ub.sub, 'bob');
});
