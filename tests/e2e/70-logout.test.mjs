// Logout: gateway cookie cleared, RP-initiated logout at the IdP, back on the site.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { CookieJar, request, setCookie, isClearing } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, show, loginOk, sessionValue, jarWithSession, ownAuthorizeUrl } from '../lib/gateway-flow.mjs';

let stack; let gw; let idp;

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp } = stack);
});
after(() => stopStack(stack));

test('logout clears the session, ends the IdP session and returns to rd', async () => {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/');
  const oldValue = sessionValue(jar);
  assert.equal((await request(`${gw.url}/inside`, { jar })).status, 200);

  const out = await request(`${gw.url}/.edgeauth/logout?rd=/x`, { jar });
  assert.equal(out.status, 302, show(out));
  assert.ok(isClearing(setCookie(out, SESSION)), `logout must clear ${SESSION}: ${JSON.stringify(out.setCookies)}`);
  assert.equal(setCookie(out, SESSION).path, '/', 'the clearing cookie must use the same Path as the session cookie');
  const disco = await (await fetch(`${idp.url}/.well-known/openid-configuration`)).json();
  const end = new URL(out.location);
  assert.equal(end.origin + end.pathname, disco.end_session_endpoint, show(out));
  assert.equal(end.searchParams.get('post_logout_redirect_uri'), `${gw.url}/.edgeauth/logged-out`);
  assert.ok(end.searchParams.get('state'), 'state missing');
  const hint = end.searchParams.get('id_token_hint');
  assert.ok(hint, 'id_token_hint missing');
  const { payload } = await jwtVerify(hint, createRemoteJWKSet(new URL(disco.jwks_uri)), { issuer: idp.issuer, audience: 'edgeauth' });
  assert.equal(payload.sub, 'alice');

  // the browser no longer has the session
  assert.equal(sessionValue(jar), undefined);
  const again = await request(`${gw.url}/inside`, { jar });
  assert.equal(again.status, 302, show(again));
  assert.equal(new URL(again.location).pathname, '/.edgeauth/login');

  // confirm at the IdP; it returns to /.edgeauth/logged-out with the state
  const w = await walkIdp(jar, out.location, { logout: true });
  const back = new URL(w.location);
  assert.equal(back.origin + back.pathname, `${gw.url}/.edgeauth/logged-out`, w.hops.join('\n'));
  assert.equal(back.searchParams.get('state'), end.searchParams.get('state'));
  const done = await request(w.location, { jar });
  if (done.status === 302) assert.equal(new URL(done.location).href, `${gw.url}/x`, show(done));
  else {
    assert.equal(done.status, 200, show(done));
    assert.match(done.body, /signed out/i);
  }

  // the IdP session is over: prompt=none needs a login now
  const probe = await request(ownAuthorizeUrl(idp, gw, { prompt: 'none' }), { jar });
  assert.equal(new URL(probe.location).searchParams.get('error'), 'login_required', show(probe));
  // and signing in through the gateway asks for the password again
  const relog = await request(`${gw.url}/inside`, { jar });
  const start = await request(relog.location, { jar });
  const page = await walkIdp(jar, start.location, {});
  assert.equal(page.location, null, 'IdP must show the login form again');
  assert.match(page.page || '', /id="login"/);
  void oldValue;
});

test('a copy of the session cookie taken before logout is refused after it (revocation list)', async () => {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/');
  const oldValue = sessionValue(jar);
  // Another signed-in browser of the same person is not affected.
  const other = new CookieJar();
  await loginOk(gw, idp, other, '/');
  await stack.origin.reset();
  assert.equal((await request(`${gw.url}/before`, { jar: jarWithSession(oldValue) })).status, 200);
  await request(`${gw.url}/.edgeauth/logout?rd=/`, { jar });
  const r = await request(`${gw.url}/inside`, { jar: jarWithSession(oldValue) });
  assert.equal(r.status, 302, show(r));
  assert.equal(new URL(r.location).pathname, '/.edgeauth/login');
  const api = await request(`${gw.url}/inside`, { jar: jarWithSession(oldValue), accept: 'application/json' });
  assert.equal(api.status, 401, show(api));
  const me = await request(`${gw.url}/.edgeauth/userinfo`, { jar: jarWithSession(oldValue), accept: 'application/json' });
  assert.equal(me.status, 401, show(me));
  assert.equal((await request(`${gw.url}/still`, { jar: other })).status, 200);
  const seen = (await stack.origin.requests()).map((q) => q.url);
  assert.deepEqual(seen.filter((u) => u.startsWith('/inside')), [], 'the revoked session reached the origin');
});

test('logout without a session still clears and goes somewhere safe', async () => {
  const r = await request(`${gw.url}/.edgeauth/logout?rd=/y`, { jar: new CookieJar() });
  assert.equal(r.status, 302, show(r));
  const loc = new URL(r.location);
  assert.ok(loc.origin === gw.url || loc.origin === idp.issuer, show(r));
});
