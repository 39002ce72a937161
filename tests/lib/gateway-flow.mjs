// Steps of a sign-in through the gateway, as a browser does them, with the
// contract's checks on each hop. Every assertion message says which request
// misbehaved so a failure reads as a contract mismatch report.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { CookieJar, request, setCookie } from './http.mjs';
import { walkIdp } from './idp-flow.mjs';

export const SESSION = 'edgeauth_session';
export const LOGIN = 'edgeauth_login';

const show = (r) => `${r.status} ${r.url}\n  location: ${r.rawLocation}\n  set-cookie: ${JSON.stringify(r.setCookies)}\n  body: ${r.body.slice(0, 300)}`;
export { show };

/** GET a protected path without a session: expect 302 to /.edgeauth/login?rd=... on the gateway. */
export async function expectLoginRedirect(gw, jar, path, { headers = {} } = {}) {
  const r = await request(gw.url + path, { jar, headers });
  assert.equal(r.status, 302, `GET ${path} without session: expected 302 to login\n${show(r)}`);
  const loc = new URL(r.location);
  assert.equal(loc.origin, gw.url, `login redirect must stay on the gateway\n${show(r)}`);
  assert.equal(loc.pathname, '/.edgeauth/login', `login redirect path\n${show(r)}`);
  return { res: r, loginUrl: loc.href, rd: loc.searchParams.get('rd') };
}

/** GET /.edgeauth/login?rd=..: expect 302 to the IdP's authorization endpoint. */
export async function startLogin(gw, jar, loginUrl, idpIssuer) {
  const r = await request(loginUrl, { jar });
  assert.equal(r.status, 302, `GET ${loginUrl}: expected 302 to the IdP\n${show(r)}`);
  const auth = new URL(r.location);
  assert.equal(auth.origin, idpIssuer, `login must redirect to the IdP\n${show(r)}`);
  return { res: r, authorizeUrl: auth.href, params: auth.searchParams };
}

/**
 * Complete sign-in for `path` (which must need a session) and return every hop.
 * opts.rd: start at /.edgeauth/login?rd=<rd> instead of at a protected path.
 */
export async function login(gw, idp, jar, path = '/', { username = 'alice', password = `${username}-pw`, rd, rawLoginUrl, userAgent } = {}) {
  let loginUrl = rawLoginUrl;
  let first;
  if (!loginUrl) {
    if (rd !== undefined) loginUrl = `${gw.url}/.edgeauth/login?rd=${encodeURIComponent(rd)}`;
    else {
      first = await expectLoginRedirect(gw, jar, path);
      loginUrl = first.loginUrl;
    }
  }
  const start = await startLogin(gw, jar, loginUrl, idp.issuer);
  const walk = await walkIdp(jar, start.authorizeUrl, { username, password });
  assert.ok(walk.location, `IdP did not redirect back (${walk.loginError || ''})\n${walk.hops.join('\n')}`);
  const cbUrl = new URL(walk.location);
  assert.equal(cbUrl.origin + cbUrl.pathname, `${gw.url}/.edgeauth/callback`, 'IdP must return to the gateway callback');
  const jarBeforeCallback = jar.clone();
  const callback = await request(walk.location, { jar, headers: userAgent ? { 'user-agent': userAgent } : {} });
  return { first, loginUrl, start, walk, callbackUrl: walk.location, callback, jarBeforeCallback };
}

/** login() and assert it produced a session and a same-origin redirect. */
export async function loginOk(gw, idp, jar, path = '/', opts = {}) {
  const l = await login(gw, idp, jar, path, opts);
  const r = l.callback;
  assert.equal(r.status, 302, `callback: expected 302 to the return URL\n${show(r)}`);
  assert.ok(setCookie(r, SESSION), `callback must set ${SESSION}\n${show(r)}`);
  assert.equal(new URL(r.location).origin, gw.url, `callback redirect must stay on the gateway\n${show(r)}`);
  return l;
}

export function sessionValue(jar) {
  return jar.get('127.0.0.1', SESSION)?.value;
}

export function jarWithSession(value, extra = {}) {
  const jar = new CookieJar();
  if (value !== undefined) jar.set('127.0.0.1', SESSION, value);
  for (const [k, v] of Object.entries(extra)) jar.set('127.0.0.1', k, v);
  return jar;
}

const jwksCache = new Map();
/** Verify an X-Edgeauth-Assertion against the gateway's published JWKS. */
export async function verifyAssertion(gw, originUrl, jwt) {
  const url = `${gw.url}/.edgeauth/jwks.json`;
  if (!jwksCache.has(url)) jwksCache.set(url, createRemoteJWKSet(new URL(url), { cooldownDuration: 0 }));
  const { payload, protectedHeader } = await jwtVerify(jwt, jwksCache.get(url), {
    issuer: gw.url, audience: originUrl, algorithms: ['EdDSA', 'ES256'],
  });
  return { payload, protectedHeader };
}

/** An authorization URL made by the test itself (for checking the IdP session). */
export function ownAuthorizeUrl(idp, gw, extra = {}) {
  const u = new URL(`${idp.issuer}/auth`);
  u.search = new URLSearchParams({
    client_id: 'edgeauth', response_type: 'code', redirect_uri: `${gw.url}/.edgeauth/callback`,
    scope: 'openid', state: crypto.randomBytes(8).toString('hex'), nonce: crypto.randomBytes(8).toString('hex'),
    code_challenge: crypto.createHash('sha256').update('v'.repeat(43)).digest('base64url'),
    code_challenge_method: 'S256', ...extra,
  });
  return u.href;
}

/** The origin's recorded requests whose path starts with `prefix`. */
export async function originSaw(origin, prefix) {
  return (await origin.requests()).filter((r) => r.url.startsWith(prefix));
}
