// Re-validation at the provider with refresh tokens (gateway/core/src/refresh.rs),
// against node-oidc-provider issuing refresh tokens that it rotates at every
// use and whose reuse revokes the whole grant (IDP_REFRESH_TOKENS=1), with
// its test hooks (IDP_TEST_HOOKS=1) to disable an account, take the token
// endpoint down and count the refresh grants it served.
//
// The gateway re-validates every 3 s here (refresh_interval_secs), so the
// waits below are for a due time to pass: they wait on the clock, which is
// the condition under test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { waitFor } from '../lib/procs.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, loginOk, sessionValue, jarWithSession, show } from '../lib/gateway-flow.mjs';

const INTERVAL = 3;
const GRACE = 5;
const USERS = Object.fromEntries(['carol', 'dave', 'erin', 'frank', 'gina'].map((u) => [u, {
  password: `${u}-pw`, claims: { email: `${u}@example.com`, email_verified: true, name: u },
}]));
let stack; let gw; let idp; let origin;

before(async () => {
  stack = await startStack({
    idpEnv: { IDP_REFRESH_TOKENS: '1', IDP_TEST_HOOKS: '1', IDP_EXTRA_USERS: JSON.stringify(USERS) },
    gatewayOptions: {
      vars: {
        refresh_interval_secs: String(INTERVAL),
        refresh_grace_secs: String(GRACE),
        routes: JSON.stringify([{ path: '/api/with-token/', pass_access_token: true, api: true }]),
      },
    },
  });
  ({ gateway: gw, idp, origin } = stack);
});
after(async () => { await stopStack(stack); });

const hook = async (pathAndQuery, method = 'POST') => {
  const r = await fetch(`${idp.issuer}/_test/${pathAndQuery}`, { method });
  assert.equal(r.status, 200, `idp hook ${pathAndQuery}`);
  return r.json();
};
const stats = () => hook('stats', 'GET');
const json = (r) => { try { return JSON.parse(r.body); } catch { return null; } };
const get = (jar, path = '/private') => request(`${gw.url}${path}`, { jar, accept: 'application/json' });

async function signedIn(username) {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/start', { username });
  const r = await get(jar);
  assert.equal(r.status, 200, show(r));
  return { jar, at: Date.now() };
}

/** Resolves once `secs` have passed since `since` (ms), plus a margin for whole-second clocks. */
const after_ = (since, secs) => waitFor(() => Date.now() >= since + secs * 1000 + 1100,
  { timeoutMs: secs * 1000 + 5000, what: `${secs} s to pass` });

/** The access tokens the origin saw on `path` (newest last). */
const tokensSeen = async (path) => (await origin.requests())
  .filter((r) => r.url.startsWith(path))
  .map((r) => r.headers['x-forwarded-access-token']);

test('a due session is re-validated at the provider and goes on, with a new cookie', async () => {
  const { jar, at } = await signedIn('carol');
  const before_ = (await stats()).refresh_grants;
  // Not due yet: no refresh and no new cookie.
  const early = await get(jar);
  assert.equal(early.status, 200);
  assert.equal(setCookie(early, SESSION), undefined, 'no cookie change before the session is due');
  await after_(at, INTERVAL);
  const due = await get(jar);
  assert.equal(due.status, 200, show(due));
  const renewed = setCookie(due, SESSION);
  assert.ok(renewed && renewed.value, `the cookie is re-issued with the next due time\n${show(due)}`);
  assert.equal((await stats()).refresh_grants, before_ + 1, 'one refresh grant at the provider');
  // The next request with the new cookie is not due: no refresh.
  assert.equal((await get(jar)).status, 200);
  assert.equal((await stats()).refresh_grants, before_ + 1);
});

test('a person disabled at the provider loses access at the next re-validation, on every copy of the cookie', async () => {
  const { jar, at } = await signedIn('dave');
  const copy = jarWithSession(sessionValue(jar));
  await hook('disable?user=dave');
  try {
    // Until the session is due, nothing is asked of the provider.
    assert.equal((await get(jar)).status, 200);
    await after_(at, INTERVAL);
    const refused = await get(jar);
    assert.equal(refused.status, 401, `the provider's invalid_grant ends the session\n${show(refused)}`);
    assert.equal(json(refused)?.error, 'unauthenticated');
    assert.ok(isClearing(setCookie(refused, SESSION)), 'the session cookie is cleared');
    // A copy of the cookie taken before is refused too (revoked by session id).
    assert.equal((await get(copy)).status, 401);
    const html = await request(`${gw.url}/private`, { jar: copy });
    assert.equal(html.status, 302);
    assert.match(html.location, /\/\.edgeauth\/login\?rd=/);
  } finally {
    await hook('enable?user=dave');
  }
});

test('50 parallel requests when the session is due make one refresh, and none fails', async () => {
  const { jar, at } = await signedIn('erin');
  await after_(at, INTERVAL);
  const before_ = await stats();
  const answers = await Promise.all(Array.from({ length: 50 }, () => get(jar.clone())));
  const statuses = answers.map((r) => r.status);
  assert.deepEqual([...new Set(statuses)], [200], `every request goes through: ${statuses.join(',')}`);
  const after1 = await stats();
  assert.equal(after1.refresh_grants - before_.refresh_grants, 1, 'exactly one refresh grant for the burst');
  assert.equal(after1.refresh_failures, before_.refresh_failures, 'no refresh was refused (no token reuse)');
  // The provider rotated the refresh token and would revoke the grant had the
  // old one been used twice: the next re-validation must still succeed.
  const fresh = answers.map((r) => setCookie(r, SESSION)).find((c) => c && c.value);
  assert.ok(fresh, 'the refreshing request re-issued the cookie');
  const next = jarWithSession(fresh.value);
  const t = Date.now();
  await after_(t, INTERVAL);
  const again = await get(next);
  assert.equal(again.status, 200, `the rotated grant still works\n${show(again)}`);
  assert.equal((await stats()).refresh_grants, after1.refresh_grants + 1);
});

test('the provider down at refresh time: the session goes on for the grace, then fails closed, then recovers', async () => {
  const { jar, at } = await signedIn('frank');
  await hook('token-down?on=1');
  try {
    await after_(at, INTERVAL);
    const during = await get(jar);
    assert.equal(during.status, 200, `within the grace the session goes on\n${show(during)}`);
    const firstFailure = Date.now();
    // Past the grace: refused with a clear reason, nothing forwarded.
    const seenBefore = (await origin.requests()).length;
    const refused = await waitFor(async () => {
      const r = await get(jar);
      return r.status === 503 ? r : null;
    }, { timeoutMs: (GRACE + 15) * 1000, intervalMs: 250, what: 'the grace to run out' });
    assert.ok(Date.now() - firstFailure >= (GRACE - 1) * 1000, 'not before the grace ran out');
    assert.equal(json(refused)?.error, 'revalidation_unavailable', show(refused));
    const page = await request(`${gw.url}/private`, { jar });
    assert.equal(page.status, 503);
    assert.match(page.body, /identity provider could not confirm your session/);
    const forwarded = (await origin.requests()).slice(seenBefore).filter((r) => r.url === '/private');
    const lastOk = forwarded.length;
    assert.ok(lastOk <= Math.ceil(GRACE * 4) + 2, 'only requests within the grace reached the origin');
  } finally {
    await hook('token-down?on=0');
  }
  // Back: the next attempt (at most 10 s after the last) restores the session.
  const back = await waitFor(async () => {
    const r = await get(jar);
    return r.status === 200 ? r : null;
  }, { timeoutMs: 20000, intervalMs: 500, what: 'the session to recover' });
  assert.ok(setCookie(back, SESSION)?.value, 'recovered with a new due time');
});

test('the access token goes only to routes that ask for it, refreshed when it changes', async () => {
  const { jar, at } = await signedIn('gina');
  const spoof = { 'x-forwarded-access-token': 'spoofed', 'X_Forwarded_Access_Token': 'spoofed2' };
  const plain = await request(`${gw.url}/private/no-token`, { jar, headers: spoof });
  assert.equal(plain.status, 200);
  const api = await request(`${gw.url}/api/with-token/me`, { jar, headers: spoof, accept: 'application/json' });
  assert.equal(api.status, 200, show(api));
  const noToken = (await origin.requests()).filter((r) => r.url === '/private/no-token');
  assert.equal(noToken.at(-1).headers['x-forwarded-access-token'], undefined, 'no token for a route that did not ask');
  assert.ok(!Object.keys(noToken.at(-1).headers).some((h) => /access.token/i.test(h)), 'no spelling of it either');
  const [first] = await tokensSeen('/api/with-token/me');
  assert.ok(first && first !== 'spoofed' && first.length >= 20, `the provider's access token, not the client's: ${first}`);
  await after_(at, INTERVAL);
  await request(`${gw.url}/api/with-token/me`, { jar, accept: 'application/json' });
  const seen = await tokensSeen('/api/with-token/me');
  assert.equal(seen.length, 2);
  assert.notEqual(seen[1], first, 'a refreshed token after re-validation');
});

test('logging out deletes the grant: a copied cookie neither works nor refreshes', async () => {
  const { jar, at } = await signedIn('carol');
  const copy = jarWithSession(sessionValue(jar));
  const out = await request(`${gw.url}/.edgeauth/logout?rd=/x`, { jar });
  assert.ok([302, 303].includes(out.status), show(out));
  await after_(at, INTERVAL);
  const before_ = (await stats()).refresh_grants;
  assert.equal((await get(copy)).status, 401);
  assert.equal((await stats()).refresh_grants, before_, 'no refresh for a logged-out session');
});
