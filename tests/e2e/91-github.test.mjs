// Sign-in with GitHub (an `oauth2` connection with the `github` preset),
// through the real gateway, against tests/idp/github.mjs: a server that
// answers the way GitHub documents (form-encoded or JSON token responses,
// errors with HTTP 200, /user with a numeric id, /user/emails with
// `primary` and `verified`, User-Agent required, PKCE S256).
//
// The tenant's only connection is GitHub, so /.edgeauth/login goes straight
// to it; its callback is /.edgeauth/callback/github.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, rawRequest, setCookie } from '../lib/http.mjs';
import { freePort } from '../lib/procs.mjs';
import { startOrigin, startGateway } from '../lib/stack.mjs';
import { SESSION, show, verifyAssertion, originSaw } from '../lib/gateway-flow.mjs';
import { startGithub, githubConnection, walkGithub } from '../lib/github.mjs';

const AUDIENCE = 'https://app.example';
let gh; let origin; let gw;

before(async () => {
  const port = await freePort('127.0.0.1');
  const gwUrl = `http://127.0.0.1:${port}`;
  // Registered at "GitHub" as the OAuth app's callback URL; GitHub accepts
  // redirect URIs below it, such as /.edgeauth/callback/github.
  [gh, origin] = await Promise.all([startGithub({ callbackUrls: [`${gwUrl}/.edgeauth/callback`] }), startOrigin()]);
  gw = await startGateway({
    port, originUrl: origin.url,
    // The legacy oidc_* settings are unused with `connections`; this issuer
    // is never contacted (nothing listens there).
    issuer: 'http://127.0.0.2:9',
    vars: {
      connections: JSON.stringify([githubConnection(gh)]),
      assertion_audience: AUDIENCE,
      header_name: 'X-Auth-Request-Name',
      routes: JSON.stringify([{ path: '/corp/', allowed_email_domains: ['example.com'] }]),
    },
  });
});

after(async () => {
  await Promise.all([gw?.stop(), gh?.stop(), origin?.stop()]);
});

/** From a protected page to GitHub's sign-in page and back to the callback. */
async function signIn(jar, user, path = '/app/x') {
  const first = await request(gw.url + path, { jar });
  assert.equal(first.status, 302, show(first));
  assert.equal(new URL(first.location).pathname, '/.edgeauth/login');
  const toGithub = await request(first.location, { jar });
  assert.equal(toGithub.status, 302, show(toGithub));
  const authorize = new URL(toGithub.location);
  assert.equal(authorize.origin + authorize.pathname, `${gh.url}/login/oauth/authorize`, show(toGithub));
  const walk = await walkGithub(authorize.href, user);
  assert.equal(walk.status, 302, `github sign-in page: ${walk.status} ${walk.body}`);
  assert.ok(walk.location.startsWith(`${gw.url}/.edgeauth/callback/github?`), walk.location);
  const jarBeforeCallback = jar.clone();
  const callback = await request(walk.location, { jar });
  return { authorize, callbackUrl: walk.location, callback, jarBeforeCallback };
}

async function signInOk(jar, user, path = '/app/x') {
  const s = await signIn(jar, user, path);
  assert.equal(s.callback.status, 302, show(s.callback));
  assert.equal(s.callback.location, gw.url + path, show(s.callback));
  assert.ok(setCookie(s.callback, SESSION), show(s.callback));
  return s;
}

/** The identity the origin saw for `path`, fetched with `jar`'s session. */
async function originView(jar, path) {
  const r = await request(gw.url + path, { jar });
  assert.equal(r.status, 200, show(r));
  const seen = (await originSaw(origin, path)).at(-1);
  const { payload } = await verifyAssertion(gw, AUDIENCE, seen.headers['x-edgeauth-assertion']);
  return { headers: seen.headers, payload };
}

function assertNoSession(r) {
  const c = setCookie(r, SESSION);
  assert.ok(!c || c.value === '', `no session may be issued\n${show(r)}`);
}

test('octocat signs in: numeric id namespaced, verified primary email, raw subject and connection in the assertion', async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  const jar = new CookieJar();
  const s = await signInOk(jar, 'octo', '/app/octo');
  // The authorization request: OAuth2 with PKCE S256, no OpenID parameters.
  const q = s.authorize.searchParams;
  assert.equal(q.get('client_id'), 'Iv1.edgeauth-test');
  assert.equal(q.get('redirect_uri'), `${gw.url}/.edgeauth/callback/github`);
  assert.equal(q.get('scope'), 'read:user user:email');
  assert.equal(q.get('code_challenge_method'), 'S256');
  assert.match(q.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
  assert.ok(q.get('state'));
  assert.equal(q.get('nonce'), null);

  const { headers, payload } = await originView(jar, '/app/octo');
  assert.equal(headers['x-auth-request-user'], 'github|583231');
  assert.equal(headers['x-auth-request-email'], 'octocat@example.com');
  assert.equal(headers['x-auth-request-name'], 'The Octocat');
  assert.equal(payload.sub, 'github|583231');
  assert.equal(payload.email, 'octocat@example.com');
  assert.equal(payload.email_verified, true);
  assert.equal(payload.idp_sub, '583231', `raw subject claim: ${JSON.stringify(payload)}`);
  assert.equal(payload.connection, 'github', `connection claim: ${JSON.stringify(payload)}`);

  // What the gateway sent to "GitHub", as GitHub's docs ask.
  const seen = await gh.requests();
  const token = seen.find((r) => r.path === '/login/oauth/access_token');
  assert.match(token.headers['user-agent'], /^edgeauth\//);
  assert.equal(token.headers.accept, 'application/json');
  for (const p of ['/user', '/user/emails']) {
    const r = seen.find((x) => x.path === p);
    assert.ok(r, `the gateway must call ${p}`);
    assert.match(r.headers.authorization, /^Bearer gho_/);
    assert.equal(r.headers.accept, 'application/vnd.github+json');
    assert.equal(r.headers['x-github-api-version'], '2022-11-28');
    assert.match(r.headers['user-agent'], /^edgeauth\//);
  }
  // The access token never reaches the origin, the browser or the log.
  const accessToken = seen.find((x) => x.path === '/user').headers.authorization.slice('Bearer '.length);
  assert.ok(!JSON.stringify(headers).includes(accessToken));
  assert.ok(!s.callback.setCookies.join().includes(accessToken));
  assert.ok(!gw.proc.output.includes(accessToken), 'the access token must not be logged');
});

test('GitHub refuses API calls without a User-Agent (the gateway always sends one)', async () => {
  const r = await rawRequest(gh.url, {
    target: '/user',
    headers: [['Authorization', 'Bearer gho_x'], ['Accept', 'application/vnd.github+json']],
  });
  assert.equal(r.status, 403);
  assert.match(r.body.toString(), /User-Agent/);
});

test("mona: her public email is not verified and her verified address is not primary, so she has no email", async () => {
  await origin.reset();
  const jar = new CookieJar();
  await signInOk(jar, 'mona', '/app/mona');
  const { headers, payload } = await originView(jar, '/app/mona');
  assert.equal(headers['x-auth-request-user'], 'github|1000002');
  assert.equal(headers['x-auth-request-email'], undefined, 'no email header without a verified primary');
  assert.equal(payload.email ?? null, null, `no email claim: ${JSON.stringify(payload)}`);
  assert.notEqual(payload.email_verified, true);
  // No name set at GitHub: the login is shown, as GitHub does.
  assert.equal(headers['x-auth-request-name'], 'mona');
  // An email-domain route admits octocat (verified example.com) but not her.
  const denied = await request(`${gw.url}/corp/x`, { jar });
  assert.equal(denied.status, 403, show(denied));
  const octo = new CookieJar();
  await signInOk(octo, 'octo', '/corp/y');
  assert.equal((await request(`${gw.url}/corp/y`, { jar: octo })).status, 200);
});

test('hubot has no verified address at all: no email reaches the origin', async () => {
  await origin.reset();
  const jar = new CookieJar();
  await signInOk(jar, 'hubot', '/app/hubot');
  const { headers, payload } = await originView(jar, '/app/hubot');
  assert.equal(headers['x-auth-request-user'], 'github|1000003');
  assert.equal(headers['x-auth-request-email'], undefined);
  assert.equal(payload.email ?? null, null, `no email claim: ${JSON.stringify(payload)}`);
});

test('a renamed login keeps the same subject', async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  const before = new CookieJar();
  await signInOk(before, 'mona', '/app/r1');
  const a = await originView(before, '/app/r1');
  await gh.rename('mona', 'mona-lisa');
  const afterJar = new CookieJar();
  await signInOk(afterJar, 'mona', '/app/r2');
  const b = await originView(afterJar, '/app/r2');
  await gh.reset();
  assert.equal(b.headers['x-auth-request-user'], a.headers['x-auth-request-user']);
  assert.equal(b.payload.sub, 'github|1000002');
  assert.equal(a.headers['x-auth-request-name'], 'mona');
  assert.equal(b.headers['x-auth-request-name'], 'mona-lisa');
});

test("GitHub's default form-encoded token response works too", async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  await gh.tokenFormat('form');
  const jar = new CookieJar();
  await signInOk(jar, 'octo', '/app/form');
  await gh.reset();
  assert.equal((await originView(jar, '/app/form')).headers['x-auth-request-user'], 'github|583231');
});

test('token endpoint errors, which GitHub sends with HTTP 200, fail the sign-in with a clear page', async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  await gh.fail('/login/oauth/access_token', { error: 'bad_verification_code' });
  const bad = await signIn(new CookieJar(), 'octo', '/app/e1');
  assert.equal(bad.callback.status, 400, show(bad.callback));
  assert.match(bad.callback.body, /Sign-in code rejected/);
  assertNoSession(bad.callback);

  await gh.fail('/login/oauth/access_token', { error: 'incorrect_client_credentials' });
  const creds = await signIn(new CookieJar(), 'octo', '/app/e2');
  assert.equal(creds.callback.status, 502, show(creds.callback));
  assert.match(creds.callback.body, /GitHub refused the gateway/);
  // GitHub's error_description ("Forced by the test.") is neither shown nor logged.
  assert.ok(!creds.callback.body.includes('Forced by the test'));
  assert.ok(!creds.callback.body.includes('incorrect_client_credentials'), 'the code is for the log');
  assert.match(gw.proc.output, /error=incorrect_client_credentials/);
  assert.ok(!gw.proc.output.includes('Forced by the test'));
  assertNoSession(creds.callback);

  await gh.fail('/login/oauth/access_token', { status: 500 });
  const down = await signIn(new CookieJar(), 'octo', '/app/e3');
  assert.equal(down.callback.status, 502, show(down.callback));
  assertNoSession(down.callback);
  assert.equal((await originSaw(origin, '/app/e')).length, 0);
});

test('userinfo and email list failures (401, 403, 5xx) fail closed', async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  for (const [p, status] of [['/user', 401], ['/user', 403], ['/user', 500], ['/user', 503], ['/user/emails', 502]]) {
    await gh.fail(p, { status });
    const s = await signIn(new CookieJar(), 'octo', '/app/u');
    assert.equal(s.callback.status, 502, `${p} ${status}\n${show(s.callback)}`);
    assert.match(s.callback.body, /GitHub/);
    assertNoSession(s.callback);
  }
  assert.equal((await originSaw(origin, '/app/u')).length, 0);
});

test("PKCE: a code injected into another sign-in is redeemed with the wrong verifier and refused", async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  // The victim's code, issued for the victim's PKCE challenge, never delivered.
  const victim = new CookieJar();
  const first = await request(`${gw.url}/app/victim`, { jar: victim });
  const toGithub = await request(first.location, { jar: victim });
  const walk = await walkGithub(toGithub.location, 'octo');
  const stolenCode = new URL(walk.location).searchParams.get('code');
  // The attacker starts an own sign-in and presents the victim's code with
  // the attacker's own state.
  const attacker = new CookieJar();
  const a1 = await request(`${gw.url}/app/attacker`, { jar: attacker });
  const a2 = await request(a1.location, { jar: attacker });
  const state = new URL(a2.location).searchParams.get('state');
  const cb = await request(`${gw.url}/.edgeauth/callback/github?code=${stolenCode}&state=${state}`, { jar: attacker });
  assert.equal(cb.status, 400, show(cb));
  assert.match(cb.body, /Sign-in code rejected/);
  assertNoSession(cb);
  const redeem = (await gh.requests()).filter((r) => r.path === '/login/oauth/access_token');
  assert.equal(redeem.length, 1, 'the gateway tried the code once, with its own verifier');
  assert.equal((await originSaw(origin, '/app/')).length, 0);
});

test('state and replay: a callback works once, only with its own state and login cookie', async () => {
  await Promise.all([gh.reset(), origin.reset()]);
  const jar = new CookieJar();
  const s = await signInOk(jar, 'octo', '/app/once');
  const replay = await request(s.callbackUrl, { jar: s.jarBeforeCallback });
  assert.equal(replay.status, 400, show(replay));
  assert.match(replay.body, /already used/);
  assertNoSession(replay);

  const other = new CookieJar();
  const t = await signIn(other, 'octo', '/app/wrong');
  const u = new URL(t.callbackUrl);
  u.searchParams.set('state', 'x'.repeat(32));
  const wrong = await request(u.href, { jar: t.jarBeforeCallback });
  assert.equal(wrong.status, 400, show(wrong));
  assertNoSession(wrong);

  const noCookie = await request(s.callbackUrl, { jar: new CookieJar() });
  assert.equal(noCookie.status, 400, show(noCookie));
  assertNoSession(noCookie);
});

test('cancelling at GitHub says so and signs nobody in', async () => {
  const jar = new CookieJar();
  const first = await request(`${gw.url}/app/cancel`, { jar });
  const toGithub = await request(first.location, { jar });
  const walk = await walkGithub(toGithub.location, null);
  assert.match(walk.location, /error=access_denied/);
  const cb = await request(walk.location, { jar });
  assert.equal(cb.status, 403, show(cb));
  assert.match(cb.body, /cancelled/);
  assertNoSession(cb);
});
