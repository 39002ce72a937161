// The idle timeout (gateway/core/src/lifecycle.rs): a session unused for
// session_idle_timeout_secs ends; one in use slides, its cookie re-issued at
// most once per session_reissue_secs; a re-issued cookie is the same session
// (same id), so logging out with it revokes the copies taken before.
//
// Short values (6 s idle, 2 s re-issue) so the clock, which is what is
// under test, passes within the test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, setCookie } from '../lib/http.mjs';
import { waitFor } from '../lib/procs.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, loginOk, sessionValue, jarWithSession, show } from '../lib/gateway-flow.mjs';

const IDLE = 6;
const REISSUE = 2;
let stack; let gw; let idp;

before(async () => {
  stack = await startStack({
    gatewayOptions: {
      vars: { session_idle_timeout_secs: String(IDLE), session_reissue_secs: String(REISSUE), session_lifetime_secs: '3600' },
    },
  });
  ({ gateway: gw, idp } = stack);
});
after(async () => { await stopStack(stack); });

const get = (jar, path = '/private') => request(`${gw.url}${path}`, { jar, accept: 'application/json' });
const until = (t) => waitFor(() => Date.now() >= t, { timeoutMs: Math.max(0, t - Date.now()) + 5000, what: 'the clock' });

async function signedIn() {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/start');
  return { jar, at: Date.now() };
}

test('a session in use outlives the idle timeout; its cookie is re-issued at most once per interval', async () => {
  const { jar, at } = await signedIn();
  const reissued = [];
  // One request a second for 1.5 idle timeouts.
  for (let i = 1; Date.now() < at + IDLE * 1500; i++) {
    await until(at + i * 1000);
    const r = await get(jar);
    assert.equal(r.status, 200, `request ${i} (${Date.now() - at} ms after sign-in)\n${show(r)}`);
    const c = setCookie(r, SESSION);
    if (c) {
      reissued.push(Date.now());
      assert.ok(c.maxAge > 0 && c.maxAge <= 3600, `the re-issued cookie never outlives the session: Max-Age ${c.maxAge}`);
      assert.ok(c.httpOnly, 'still HttpOnly');
    }
  }
  assert.ok(reissued.length >= 3, `the idle clock moved (${reissued.length} re-issues)`);
  for (let i = 1; i < reissued.length; i++) {
    assert.ok(reissued[i] - reissued[i - 1] >= (REISSUE - 1) * 1000,
      `at most one re-issue per ${REISSUE} s: ${reissued.map((t) => t - at).join(', ')} ms`);
  }
  assert.ok(reissued.length <= Math.ceil((IDLE * 1.5) / (REISSUE - 1)), `not one per request: ${reissued.length}`);
});

test('a session left idle ends: the next request signs in again', async () => {
  const { jar, at } = await signedIn();
  assert.equal((await get(jar)).status, 200);
  await until(at + (IDLE + 1) * 1000 + 500);
  const api = await get(jar);
  assert.equal(api.status, 401, show(api));
  const page = await request(`${gw.url}/private`, { jar });
  assert.equal(page.status, 302);
  assert.match(page.location, /\/\.edgeauth\/login\?rd=%2Fprivate/);
  // Signing in again works at once.
  await loginOk(gw, idp, jar, '/start');
  assert.equal((await get(jar)).status, 200);
});

test('a re-issued cookie is the same session: logging out with it revokes the copy taken before', async () => {
  const { jar, at } = await signedIn();
  const before_ = jarWithSession(sessionValue(jar));
  await until(at + REISSUE * 1000 + 1100);
  const r = await get(jar);
  assert.ok(setCookie(r, SESSION)?.value, `re-issued\n${show(r)}`);
  assert.notEqual(sessionValue(jar), sessionValue(before_), 'a new cookie value');
  assert.equal((await get(before_)).status, 200, 'the older copy is still the live session');
  const out = await request(`${gw.url}/.edgeauth/logout?rd=/x`, { jar });
  assert.equal(out.status, 302);
  assert.ok(Date.now() < at + IDLE * 1000, 'checked before the idle timeout could end it');
  assert.equal((await get(before_)).status, 401, 'the copy from before the re-issue is revoked too');
});

test('every sign-in is a new session: signing in again in the same browser does not keep the earlier id', async () => {
  const { jar } = await signedIn();
  const first = jarWithSession(sessionValue(jar));
  // Signing in again with the session cookie still in the jar (what a
  // step-up or a second sign-in does).
  await loginOk(gw, idp, jar, '/start', { rd: '/start' });
  assert.notEqual(sessionValue(jar), sessionValue(first), 'a new cookie');
  // Ending the earlier session leaves the new one alone, and the other way
  // round: they have different ids on the revocation list.
  assert.equal((await request(`${gw.url}/.edgeauth/logout?rd=/x`, { jar: first })).status, 302);
  assert.equal((await get(first)).status, 401, 'the earlier session ended');
  assert.equal((await get(jar)).status, 200, 'the new session is not the earlier one');
});
