// Class 6 — session lifecycle, through the running gateway: fixation (cookies
// planted before login, cookie tossing against the https `__Host-` names),
// login CSRF (a callback URL opened in another browser), replayed callbacks
// (sequential with a provider that would redeem a code twice, concurrent with
// the real IdP), swapped codes, concurrent logins in one browser, concurrent
// use of one session, policy changes applying to existing sessions, logout
// clearing the session even when the IdP is gone, and rotation of session
// keys without logging everyone out. (Sessions are cookies with an absolute
// lifetime, revoked at logout through a KV list, and there are no refresh
// tokens: nothing to refresh concurrently.)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, rawRequest, setCookie } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { startStack, stopStack, startGateway, sessionKey } from '../lib/stack.mjs';
import { SESSION, LOGIN, login, loginOk, sessionValue, startLogin, expectLoginRedirect, show } from '../lib/gateway-flow.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { Failures, pool, tokenAnswer, issuesSession } from './lib/sec.mjs';

let stack; let gw; let idp; let op; let t; let gS; const extra = [];

before(async () => {
  stack = await startStack({ gateways: 6 });
  ({ gateway: gw, idp } = stack);
  op = await startHostileIdp();
  t = op.tenant('life');
  gS = await stack.startGateway({ issuer: t.issuer });
});
after(async () => { await Promise.all(extra.map((g) => g.stop())); await stopStack(stack); await op?.stop(); });

const userOf = async (g, jar) => {
  const r = await request(`${g.url}/.edgeauth/userinfo`, { jar, accept: 'application/json' });
  return r.status === 200 ? JSON.parse(r.body).sub : null;
};

test('fixation: no cookie planted before sign-in survives it', async () => {
  const bobJar = new CookieJar();
  await loginOk(gw, idp, bobJar, '/', { username: 'bob' });
  const bobSession = sessionValue(bobJar);
  const attackerLogin = new CookieJar();
  await startLogin(gw, attackerLogin, `${gw.url}/.edgeauth/login?rd=%2F`, idp.issuer);
  const attackerLoginCookie = attackerLogin.get('127.0.0.1', LOGIN).value;
  const f = new Failures('planted cookies');
  const plants = {
    "attacker's valid session": (j) => j.set('127.0.0.1', SESSION, bobSession),
    'garbage session': (j) => j.set('127.0.0.1', SESSION, 'garbage'),
    "attacker's login cookie": (j) => j.set('127.0.0.1', LOGIN, attackerLoginCookie, '/.edgeauth/'),
    "attacker's login cookie at /": (j) => j.set('127.0.0.1', LOGIN, attackerLoginCookie, '/'),
    'both': (j) => { j.set('127.0.0.1', SESSION, bobSession); j.set('127.0.0.1', LOGIN, attackerLoginCookie, '/.edgeauth/'); },
  };
  for (const [name, plant] of Object.entries(plants)) {
    const jar = new CookieJar();
    plant(jar);
    const l = await login(gw, idp, jar, '/', { username: 'alice', rd: '/after' });
    const c = setCookie(l.callback, SESSION);
    f.check(l.callback.status === 302 && c && c.value && c.value !== bobSession, `${name}: callback ${l.callback.status}, new session ${Boolean(c?.value)}`);
    f.check(await userOf(gw, jar) === 'alice', `${name}: signed in as ${await userOf(gw, jar)}`);
  }
  f.done();
});

test('cookie tossing: over https the gateway reads only its __Host- cookies', async () => {
  // public_url https (the host still speaks plain http to the test): cookie names get the __Host- prefix,
  // which browsers refuse from sibling domains, with a Domain, or without Secure and Path=/.
  const gH = await startGateway({ originUrl: stack.origin.url, issuer: t.issuer, vars: { public_url: 'https://127.0.0.1:1' } });
  extra.push(gH);
  const start = await request(`${gH.url}/.edgeauth/login?rd=%2F`);
  const lc = setCookie(start, '__Host-edgeauth_login');
  assert.ok(lc && lc.secure && lc.path === '/' && !lc.domain && lc.httpOnly, `login cookie ${JSON.stringify(start.setCookies)}`);
  const p = new URL(start.location).searchParams;
  t.onCode('tossing', async () => tokenAnswer(await t.sign(t.claims(p.get('nonce')))));
  const cb = await rawRequest(gH.url, { target: `/.edgeauth/callback?code=tossing&state=${encodeURIComponent(p.get('state'))}`, headers: [['Cookie', `__Host-edgeauth_login=${lc.value}`]] });
  assert.equal(cb.status, 302);
  const line = cb.headers.find(([k, v]) => k === 'set-cookie' && v.startsWith('__Host-edgeauth_session='))?.[1];
  assert.ok(line && /;\s*Secure/i.test(line) && /;\s*Path=\//.test(line) && !/Domain=/i.test(line) && /HttpOnly/i.test(line), `session cookie ${line}`);
  const v = line.split(';')[0].split('=').slice(1).join('=');
  const get = (cookie) => rawRequest(gH.url, { target: '/x', headers: [['Accept', 'application/json'], ['Cookie', cookie]] }).then((r) => r.status);
  assert.equal(await get(`__Host-edgeauth_session=${v}`), 200, 'the genuine __Host- cookie');
  for (const name of ['edgeauth_session', '__host-edgeauth_session', '__Secure-edgeauth_session', '__HOST-edgeauth_session', 'Host-edgeauth_session']) {
    assert.equal(await get(`${name}=${v}`), 401, `a session under the name ${name} (settable by a sibling) must be ignored`);
  }
});

test('login CSRF and replays: a callback works once, in the browser that started it', async () => {
  const f = new Failures('callback misuse');
  // the attacker's callback URL in the victim's browser (no login cookie / the victim's own pending login)
  const attacker = new CookieJar();
  const { loginUrl } = await expectLoginRedirect(gw, attacker, '/x');
  const s = await startLogin(gw, attacker, loginUrl, idp.issuer);
  const w = await walkIdp(attacker, s.authorizeUrl, { username: 'bob', password: 'bob-pw' });
  const victim = new CookieJar();
  const v1 = await request(w.location, { jar: victim });
  f.check(v1.status === 400 && !issuesSession(v1), `callback without the login cookie: ${v1.status}`);
  const victim2 = new CookieJar();
  await startLogin(gw, victim2, `${gw.url}/.edgeauth/login?rd=%2F`, idp.issuer);
  const v2 = await request(w.location, { jar: victim2 });
  f.check(v2.status === 400 && !issuesSession(v2), `callback with the victim's own pending login: ${v2.status}`);
  // the browser that started it can still finish (the failed attempts did not sign anybody in)
  const a = await request(w.location, { jar: attacker });
  f.check(a.status === 302 && issuesSession(a), `the starting browser's callback: ${a.status}`);
  f.check(await userOf(gw, victim) === null && await userOf(gw, victim2) === null, 'the victim got a session');
  f.done();
});

test('replayed callbacks: sequential (provider redeems twice) and concurrent (real IdP) give at most one session', async () => {
  // sequential: keep the login cookie from before the callback, replay 5 times
  const jar = new CookieJar();
  const start = await request(`${gS.url}/.edgeauth/login?rd=%2F`, { jar });
  const params = new URL(start.location).searchParams;
  const loginCookie = jar.get('127.0.0.1', LOGIN).value;
  const code = 'replayed-code';
  t.onCode(code, async () => tokenAnswer(await t.sign(t.claims(params.get('nonce')))));
  const url = `${gS.url}/.edgeauth/callback?code=${code}&state=${encodeURIComponent(params.get('state'))}`;
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    const r = await rawRequest(gS.url, { target: new URL(url).pathname + new URL(url).search, headers: [['Cookie', `edgeauth_login=${loginCookie}`]] });
    statuses.push([r.status, r.headers.some(([k, v]) => k === 'set-cookie' && /^edgeauth_session=[^;]+/.test(v))]);
  }
  assert.deepEqual(statuses, [[302, true], [400, false], [400, false], [400, false], [400, false]], 'only the first callback signs in');
  assert.equal(t.requests.filter((r) => r.kind === 'token' && r.form?.code === code).length, 1, 'a replay must not even reach the token endpoint');

  // concurrent: one real callback fired 8 times at once
  const racer = new CookieJar();
  const s2 = await startLogin(gw, racer, `${gw.url}/.edgeauth/login?rd=%2F`, idp.issuer);
  const w2 = await walkIdp(racer, s2.authorizeUrl, { username: 'alice', password: 'alice-pw' });
  const lc = racer.get('127.0.0.1', LOGIN).value;
  const target = new URL(w2.location);
  const results = await Promise.all(Array.from({ length: 8 }, () => rawRequest(gw.url, { target: target.pathname + target.search, headers: [['Cookie', `edgeauth_login=${lc}`]] })));
  const sessions = results.filter((r) => r.headers.some(([k, v]) => k === 'set-cookie' && /^edgeauth_session=[^;]+/.test(v)));
  assert.ok(sessions.length <= 1, `${sessions.length} sessions from one callback: ${results.map((r) => r.status)}`);
  assert.ok(results.every((r) => r.status === 302 || (r.status >= 400 && r.status < 500)), `statuses ${results.map((r) => r.status)}`);
});

test('swapped codes: a code from one sign-in in another fails closed', async () => {
  const f = new Failures('swapped codes');
  const a = new CookieJar();
  const first = await loginOk(gw, idp, a, '/first');
  const usedCode = new URL(first.callbackUrl).searchParams.get('code');
  // an unused code of another browser's flow, and the used one, into a fresh flow
  const other = new CookieJar();
  const so = await startLogin(gw, other, `${gw.url}/.edgeauth/login?rd=%2F`, idp.issuer);
  const wo = await walkIdp(other, so.authorizeUrl, { username: 'bob', password: 'bob-pw' });
  const unusedCode = new URL(wo.location).searchParams.get('code');
  for (const [name, code] of [['used code', usedCode], ["another flow's unused code", unusedCode], ['made-up code', 'x'.repeat(40)], ['empty', ''], ['2049 chars', 'c'.repeat(2049)]]) {
    const jar = new CookieJar();
    const s = await startLogin(gw, jar, `${gw.url}/.edgeauth/login?rd=%2F`, idp.issuer);
    const w = await walkIdp(jar, s.authorizeUrl, { username: 'alice', password: 'alice-pw' });
    const u = new URL(w.location);
    u.searchParams.set('code', code);
    const r = await request(u.href, { jar });
    f.check(r.status >= 400 && r.status < 500 && !issuesSession(r), `${name}: ${r.status}`);
    f.check(await userOf(gw, jar) === null, `${name}: signed in as ${await userOf(gw, jar)}`);
  }
  f.done();
});

test('two sign-ins in one browser at once: each session belongs to whoever authenticated', async () => {
  const jar = new CookieJar();
  const s1 = await startLogin(gw, jar, `${gw.url}/.edgeauth/login?rd=%2Fone`, idp.issuer);
  const w1 = await walkIdp(jar.clone(), s1.authorizeUrl, { username: 'alice', password: 'alice-pw' });
  const s2 = await startLogin(gw, jar, `${gw.url}/.edgeauth/login?rd=%2Ftwo`, idp.issuer);
  const w2 = await walkIdp(jar.clone(), s2.authorizeUrl, { username: 'bob', password: 'bob-pw' });
  const r1 = await request(w1.location, { jar: jar.clone() });
  assert.ok(r1.status === 400 && !issuesSession(r1), `the superseded sign-in: ${show(r1)}`);
  const r2 = await request(w2.location, { jar });
  assert.equal(r2.status, 302, show(r2));
  assert.equal(await userOf(gw, jar), 'bob');
});

test('one session used 40 times at once: same identity every time', async () => {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/');
  await stack.origin.reset();
  const rs = await pool(Array.from({ length: 40 }, (_, i) => i), 20, (i) => request(`${gw.url}/conc/${i}`, { jar }));
  assert.ok(rs.every((r) => r.status === 200), rs.map((r) => r.status).join(','));
  const recs = (await stack.origin.requests()).filter((r) => r.url.startsWith('/conc/'));
  assert.equal(recs.length, 40);
  assert.ok(recs.every((r) => r.headers['x-auth-request-user'] === 'alice'));
});

test('policy changes apply to existing sessions; logout clears even with the IdP gone', async () => {
  const keys = [sessionKey()];
  const open = await stack.startGateway({ sessionKeys: keys });
  const jar = new CookieJar();
  await loginOk(open, idp, jar, '/', { username: 'bob' });
  const bob = sessionValue(jar);
  // same keys, stricter configuration: the old session no longer passes
  const strict = await startGateway({ originUrl: stack.origin.url, issuer: idp.issuer, sessionKeys: keys, allowedEmailDomains: 'example.com',
    vars: { routes: JSON.stringify([{ path: '/admin/', allowed_groups: ['admins'] }]) } });
  extra.push(strict);
  const j2 = new CookieJar();
  j2.set('127.0.0.1', SESSION, bob);
  const r = await request(`${strict.url}/x`, { jar: j2 });
  assert.equal(r.status, 403, `bob (unverified) under a new domain rule: ${show(r)}`);
  const who = await request(`${open.url}/.edgeauth/userinfo`, { jar: j2, accept: 'application/json' });
  assert.equal(JSON.parse(who.body).sub, 'bob');
  // logout against a gateway whose IdP is unreachable: the session cookie is still cleared
  const gone = await startGateway({ originUrl: stack.origin.url, issuer: 'http://127.0.0.3:9', sessionKeys: keys });
  extra.push(gone);
  const out = await request(`${gone.url}/.edgeauth/logout?rd=%2F`, { jar: j2 });
  assert.equal(out.status, 200, show(out));
  const c = setCookie(out, SESSION);
  assert.ok(c && c.value === '' && c.maxAge === 0, `logout must clear the session: ${JSON.stringify(out.setCookies)}`);
  assert.equal(await userOf(gone, j2), null, 'the browser has no session after logout');
});

test('rotation: prepending a key keeps sessions, removing it ends them', async () => {
  const A = sessionKey(); const B = sessionKey();
  const gA = await stack.startGateway({ sessionKeys: [A] });
  const ja = new CookieJar();
  await loginOk(gA, idp, ja, '/');
  const aValue = sessionValue(ja);
  const gBA = await stack.startGateway({ sessionKeys: [B, A] });
  const jb = new CookieJar();
  await loginOk(gBA, idp, jb, '/');
  const bValue = sessionValue(jb);
  assert.ok(bValue.startsWith(`${B.kid}.`), 'the first key seals');
  const gB = await startGateway({ originUrl: stack.origin.url, issuer: idp.issuer, sessionKeys: [B] });
  extra.push(gB);
  const as = (g, v) => { const j = new CookieJar(); j.set('127.0.0.1', SESSION, v); return userOf(g, j); };
  assert.equal(await as(gBA, aValue), 'alice', 'old-key session under [B, A]');
  assert.equal(await as(gBA, bValue), 'alice', 'new-key session under [B, A]');
  assert.equal(await as(gB, aValue), null, 'old-key session after A is removed');
  assert.equal(await as(gB, bValue), 'alice', 'new-key session under [B]');
  assert.equal(await as(gA, bValue), null, 'new-key session under the old ring [A]');
});
