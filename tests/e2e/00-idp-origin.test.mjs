// The dev IdP and the example origin on their own (no gateway): they are the
// fixtures every other test relies on, so check them directly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { CookieJar, request } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { freePort } from '../lib/procs.mjs';
import { startIdp, startOrigin, CLIENT_SECRET } from '../lib/stack.mjs';

let idp; let origin; let gw; let disco; let jwks;

before(async () => {
  gw = `http://127.0.0.1:${await freePort()}`; // nothing listens there: we only read redirects
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [gw] }), startOrigin()]);
  disco = await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json();
  jwks = createRemoteJWKSet(new URL(disco.jwks_uri));
});
after(async () => { await Promise.all([idp?.stop(), origin?.stop()]); });

function authUrl(clientId, extra = {}) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const state = crypto.randomBytes(12).toString('base64url');
  const nonce = crypto.randomBytes(12).toString('base64url');
  const u = new URL(disco.authorization_endpoint);
  u.search = new URLSearchParams({
    client_id: clientId, response_type: 'code', redirect_uri: `${gw}/.edgeauth/callback`,
    scope: 'openid email profile', state, nonce,
    code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256', ...extra,
  });
  return { url: u.href, verifier, state, nonce };
}

async function exchange(clientId, code, verifier, auth = 'basic') {
  const body = new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: `${gw}/.edgeauth/callback`, code_verifier: verifier });
  const headers = { 'content-type': 'application/x-www-form-urlencoded' };
  if (auth === 'basic') headers.authorization = `Basic ${Buffer.from(`${clientId}:${CLIENT_SECRET}`).toString('base64')}`;
  else { body.set('client_id', clientId); body.set('client_secret', CLIENT_SECRET); }
  const r = await fetch(disco.token_endpoint, { method: 'POST', headers, body });
  return { status: r.status, json: await r.json() };
}

async function login(clientId, user, pw, auth = 'basic') {
  const jar = new CookieJar();
  const a = authUrl(clientId);
  const w = await walkIdp(jar, a.url, { username: user, password: pw });
  assert.ok(w.location, `no redirect back: ${w.loginError || w.hops.join('\n')}`);
  const cb = new URL(w.location);
  assert.equal(cb.origin + cb.pathname, `${gw}/.edgeauth/callback`);
  assert.equal(cb.searchParams.get('state'), a.state);
  assert.equal(cb.searchParams.get('iss'), idp.issuer);
  const tok = await exchange(clientId, cb.searchParams.get('code'), a.verifier, auth);
  assert.equal(tok.status, 200, JSON.stringify(tok.json));
  const { payload, protectedHeader } = await jwtVerify(tok.json.id_token, jwks, { issuer: idp.issuer, audience: clientId });
  assert.equal(payload.nonce, a.nonce);
  return { jar, payload, protectedHeader, a, cb };
}

test('discovery: issuer on 127.0.0.2, PKCE S256, logout, algorithms', () => {
  assert.match(idp.issuer, /^http:\/\/127\.0\.0\.2:\d+$/);
  assert.equal(disco.issuer, idp.issuer);
  assert.deepEqual(disco.code_challenge_methods_supported, ['S256']);
  assert.ok(disco.end_session_endpoint);
  for (const alg of ['RS256', 'ES256', 'EdDSA']) assert.ok(disco.id_token_signing_alg_values_supported.includes(alg), alg);
});

test('alice: RS256 id_token carries email, email_verified, name, groups', async () => {
  const { payload, protectedHeader } = await login('edgeauth', 'alice', 'alice-pw');
  assert.equal(protectedHeader.alg, 'RS256');
  assert.equal(payload.sub, 'alice');
  assert.equal(payload.email, 'alice@example.com');
  assert.equal(payload.email_verified, true);
  assert.equal(payload.name, 'Alice Example');
  assert.deepEqual(payload.groups, ['admins', 'devs']);
});

test('bob: email_verified is false', async () => {
  const { payload } = await login('edgeauth', 'bob', 'bob-pw');
  assert.equal(payload.email, 'bob@example.com');
  assert.equal(payload.email_verified, false);
  assert.deepEqual(payload.groups, ['users']);
});

test('ES256 client (client_secret_post) and EdDSA client', async () => {
  const es = await login('edgeauth-es256', 'alice', 'alice-pw', 'post');
  assert.equal(es.protectedHeader.alg, 'ES256');
  const ed = await login('edgeauth-eddsa', 'alice', 'alice-pw');
  assert.equal(ed.protectedHeader.alg, 'EdDSA');
});

test('wrong password re-shows the form with #error; unknown user too', async () => {
  for (const [u, p] of [['alice', 'bob-pw'], ['alice', ''], ['mallory', 'alice-pw']]) {
    const w = await walkIdp(new CookieJar(), authUrl('edgeauth').url, { username: u, password: p });
    assert.equal(w.location, null);
    assert.equal(w.loginError, 'Invalid username or password');
  }
});

test('abort link returns error=access_denied with state', async () => {
  const a = authUrl('edgeauth');
  const w = await walkIdp(new CookieJar(), a.url, { abort: true });
  const cb = new URL(w.location);
  assert.equal(cb.searchParams.get('error'), 'access_denied');
  assert.equal(cb.searchParams.get('state'), a.state);
});

test('PKCE is required; code replay and wrong verifier are rejected', async () => {
  const noPkce = new URL(authUrl('edgeauth').url);
  noPkce.searchParams.delete('code_challenge');
  noPkce.searchParams.delete('code_challenge_method');
  const r = await request(noPkce.href);
  assert.equal(new URL(r.location).searchParams.get('error'), 'invalid_request');

  const jar = new CookieJar();
  const a = authUrl('edgeauth');
  const w = await walkIdp(jar, a.url, { username: 'alice', password: 'alice-pw' });
  const code = new URL(w.location).searchParams.get('code');
  assert.equal((await exchange('edgeauth', code, 'wrong-verifier-wrong-verifier-wrong-verifier')).status, 400);
  const a2 = authUrl('edgeauth');
  const w2 = await walkIdp(jar, a2.url, {});
  const code2 = new URL(w2.location).searchParams.get('code');
  assert.equal((await exchange('edgeauth', code2, a2.verifier)).status, 200);
  const again = await exchange('edgeauth', code2, a2.verifier);
  assert.equal(again.status, 400);
  assert.equal(again.json.error, 'invalid_grant');
});

test('RP-initiated logout ends the IdP session', async () => {
  const { jar } = await login('edgeauth', 'alice', 'alice-pw');
  // SSO: while signed in, prompt=none gets a code
  const sso = await request(authUrl('edgeauth', { prompt: 'none' }).url, { jar });
  assert.ok(new URL(sso.location).searchParams.get('code'), sso.location);
  const end = new URL(disco.end_session_endpoint);
  end.search = new URLSearchParams({ post_logout_redirect_uri: `${gw}/.edgeauth/logged-out`, state: 'bye', client_id: 'edgeauth' });
  const w = await walkIdp(jar, end.href, { logout: true });
  assert.equal(w.location, `${gw}/.edgeauth/logged-out?state=bye`);
  const after = await request(authUrl('edgeauth', { prompt: 'none' }).url, { jar });
  assert.equal(new URL(after.location).searchParams.get('error'), 'login_required');
});

test('origin records requests, echoes bodies, marks responses', async () => {
  await origin.reset();
  const r = await fetch(`${origin.url}/hello?x=1`, { headers: { 'x-auth-request-user': 'zed' } });
  assert.equal(r.headers.get('x-origin'), 'yes');
  assert.match(await r.text(), /zed/);
  const body = crypto.randomBytes(300000);
  const e = await fetch(`${origin.url}/echo`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } });
  assert.ok(Buffer.from(await e.arrayBuffer()).equals(body));
  const recs = await origin.requests();
  assert.equal(recs.length, 2);
  assert.equal(recs[0].url, '/hello?x=1');
  assert.equal(recs[0].headers['x-auth-request-user'], 'zed');
  assert.equal(recs[1].bodyLength, body.length);
  assert.equal(recs[1].bodySha256, crypto.createHash('sha256').update(body).digest('hex'));
});
