// Class 12 — federation: IdP mix-up across a tenant's connections (RFC 9700
// §4.4, RFC 9207). Two real providers (social, which sends `iss`, and
// enterprise, which does not) and a scripted rogue one, all connections of
// one tenant. Every attack must fail closed: an error page a person can read,
// no session, nothing forwarded with an identity.
//
// - a callback of a login started with A, delivered to B's callback path
// - a code from A injected into a login started with B (both callback paths)
// - an `iss` naming the other provider, or given twice
// - no `iss` although A's metadata says it sends one (RFC 9207 §2.4)
// - an ID token of A (signature valid, A's keys republished by B) in a B login

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { CLIENT_SECRET } from '../lib/stack.mjs';
import { SESSION, show } from '../lib/gateway-flow.mjs';
import {
  callbackPath, connectionsFor, loginUrl, startFederation, toCallback,
} from '../lib/federation.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { Failures, issuesSession } from './lib/sec.mjs';

let fed; let gw; let op; let rogue;

before(async () => {
  op = await startHostileIdp({ host: '127.0.0.4' });
  rogue = op.tenant('rogue');
  fed = await startFederation({
    connections: (f) => [
      ...connectionsFor(f),
      { id: 'rogue', name: 'Rogue', kind: 'oidc', issuer: rogue.issuer, client_id: 'edgeauth', client_secret: CLIENT_SECRET },
    ],
  });
  gw = fed.gateway;
});
after(async () => { await fed?.stop(); await op?.stop(); });

const idpOf = (id) => ({ social: fed.social, enterprise: fed.enterprise }[id]);

/** The callback URL the provider sent, moved to `path` on the gateway, query edited by `edit`. */
function moved(callbackUrl, path, edit = () => {}) {
  const u = new URL(callbackUrl);
  u.pathname = path;
  edit(u.searchParams);
  return u.href;
}

/** Signed in on `gw`? (the userinfo endpoint answers for a session only) */
async function signedInAs(jar) {
  const r = await request(`${gw.url}/.edgeauth/userinfo`, { jar, accept: 'application/json' });
  return r.status === 200 ? JSON.parse(r.body).sub : null;
}

/** Fails closed: an error page, no session cookie, and the browser is not signed in afterwards. */
async function failedClosed(f, label, res, jar) {
  const html = /text\/html/.test(res.headers.get('content-type') || '');
  f.check(res.status >= 400 && res.status < 600, `${label}: status ${res.status}, expected an error\n${show(res)}`);
  f.check(html && /<h1>[^<]+<\/h1>/.test(res.body), `${label}: expected an error page a person can read\n${show(res)}`);
  f.check(!issuesSession(res), `${label}: the response issued a session`);
  const who = await signedInAs(jar);
  f.check(who === null, `${label}: the browser is signed in as ${who}`);
}

test('a callback of connection A delivered to B\'s callback path is refused', async () => {
  const f = new Failures('callbacks at the wrong connection');
  for (const [a, b] of [['social', 'enterprise'], ['enterprise', 'social'], ['social', 'rogue'], ['enterprise', null], ['social', null]]) {
    const jar = new CookieJar();
    const flow = await toCallback(jar, loginUrl(gw, { connection: a, rd: '/mixed' }), idpOf(a));
    assert.equal(flow.callbackUrl.pathname, callbackPath(a), `${a}: the provider returns to ${a}'s own callback`);
    const res = await request(moved(flow.callbackUrl, callbackPath(b)), { jar });
    await failedClosed(f, `${a}'s callback at ${callbackPath(b)}`, res, jar);
  }
  // Nothing of it reached the origin.
  const seen = (await fed.origin.requests()).filter((r) => r.url.startsWith('/mixed'));
  f.check(seen.length === 0, `the origin saw ${seen.length} request(s)`);
  f.done();
});

test('a code from A injected into a login started with B is refused at either callback', async () => {
  const f = new Failures('injected codes');
  for (const [a, b] of [['social', 'enterprise'], ['enterprise', 'social']]) {
    for (const at of [b, a]) {
      // The attacker's own sign-in at A, stopped before its callback: a fresh code.
      const attacker = new CookieJar();
      const stolen = await toCallback(attacker, loginUrl(gw, { connection: a }), idpOf(a), { username: 'alice' });
      // The victim's browser is in a login started with B.
      const victim = new CookieJar();
      const start = await request(loginUrl(gw, { connection: b, rd: '/victim' }), { jar: victim });
      assert.equal(start.status, 302, show(start));
      const state = new URL(start.location).searchParams.get('state');
      const res = await request(moved(stolen.callbackUrl, callbackPath(at), (q) => q.set('state', state)), { jar: victim });
      await failedClosed(f, `${a}'s code with ${b}'s state at ${callbackPath(at)}`, res, victim);
    }
  }
  f.done();
});

test('an `iss` naming another provider, or given twice, is refused', async () => {
  const f = new Failures('foreign iss parameters');
  const cases = [
    ['social', 'enterprise', (q) => q.set('iss', fed.enterprise.issuer)],
    ['social', 'rogue issuer', (q) => q.set('iss', rogue.issuer)],
    ['social', 'social + trailing slash', (q) => q.set('iss', `${fed.social.issuer}/`)],
    ['enterprise', 'social', (q) => q.set('iss', fed.social.issuer)],
    ['social', 'twice (right, then enterprise)', (q) => q.append('iss', fed.enterprise.issuer)],
    ['social', 'twice (enterprise, then right)', (q) => { const right = q.get('iss'); q.set('iss', fed.enterprise.issuer); q.append('iss', right); }],
  ];
  for (const [a, what, edit] of cases) {
    const jar = new CookieJar();
    const flow = await toCallback(jar, loginUrl(gw, { connection: a }), idpOf(a));
    const res = await request(moved(flow.callbackUrl, callbackPath(a), edit), { jar });
    await failedClosed(f, `${a} login, iss ${what}`, res, jar);
  }
  f.done();
});

test('no `iss` from a provider whose metadata says it sends one is refused (RFC 9207 §2.4)', async () => {
  const meta = await (await fetch(`${fed.social.issuer}/.well-known/openid-configuration`)).json();
  assert.equal(meta.authorization_response_iss_parameter_supported, true, 'the social provider advertises iss');
  const f = new Failures('callbacks without iss');
  for (const strip of [(q) => q.delete('iss'), (q) => q.set('iss', '')]) {
    const jar = new CookieJar();
    const flow = await toCallback(jar, loginUrl(gw, { connection: 'social' }), fed.social);
    assert.equal(flow.callbackUrl.searchParams.get('iss'), fed.social.issuer, 'the social provider sends iss');
    const res = await request(moved(flow.callbackUrl, callbackPath('social'), strip), { jar });
    await failedClosed(f, `social callback, iss ${strip.toString()}`, res, jar);
  }
  f.done();
  // The same sign-in with `iss` as sent works, and so does the enterprise
  // provider's, which does not advertise `iss` and does not send it.
  for (const id of ['social', 'enterprise']) {
    const jar = new CookieJar();
    const flow = await toCallback(jar, loginUrl(gw, { connection: id }), idpOf(id));
    assert.equal(flow.callbackUrl.searchParams.has('iss'), id === 'social');
    const res = await request(flow.callbackUrl.href, { jar });
    assert.equal(res.status, 302, `${id}: a genuine callback signs in\n${show(res)}`);
    assert.equal(await signedInAs(jar), `${id}|alice`);
  }
});

/** A code from the social provider for an authorization request of our own with `nonce`. */
async function socialIdToken(nonce) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const redirectUri = `${gw.url}${callbackPath('social')}`;
  const auth = new URL(`${fed.social.issuer}/auth`);
  auth.search = new URLSearchParams({
    client_id: 'edgeauth', response_type: 'code', redirect_uri: redirectUri, scope: 'openid email profile',
    state: 'own', nonce, code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
  });
  const walk = await walkIdp(new CookieJar(), auth.href, { username: 'alice', password: 'alice-pw' });
  const code = new URL(walk.location).searchParams.get('code');
  assert.ok(code, walk.hops.join('\n'));
  const r = await fetch(`${fed.social.issuer}/token`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`edgeauth:${CLIENT_SECRET}`).toString('base64')}`,
    },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }),
  });
  const body = await r.json();
  assert.ok(body.id_token, JSON.stringify(body));
  return body.id_token;
}

test('an ID token of provider A presented in a login with B is refused, even with A\'s keys at B', async () => {
  // The rogue provider republishes the social provider's keys, so the
  // signature alone would verify: only binding the token to the connection's
  // issuer stops it.
  const socialKeys = await (await fetch(`${fed.social.issuer}/jwks`)).json();
  rogue.extraJwks = socialKeys.keys;
  const f = new Failures('foreign ID tokens');
  const jar = new CookieJar();
  const start = await request(loginUrl(gw, { connection: 'rogue', rd: '/rogue' }), { jar });
  assert.equal(start.status, 302, show(start));
  const authorize = new URL(start.location);
  assert.equal(authorize.origin + authorize.pathname, `${rogue.issuer}/auth`, show(start));
  const nonce = authorize.searchParams.get('nonce');
  const foreign = await socialIdToken(nonce);
  rogue.onCode('foreign', { json: { access_token: 'at', token_type: 'Bearer', id_token: foreign } });
  const res = await request(`${gw.url}${callbackPath('rogue')}?code=foreign&state=${authorize.searchParams.get('state')}`, { jar });
  await failedClosed(f, 'social ID token from the rogue token endpoint', res, jar);
  f.done();

  // The rogue connection itself works (so the refusal above is the check).
  const jar2 = new CookieJar();
  const start2 = await request(loginUrl(gw, { connection: 'rogue' }), { jar: jar2 });
  const a2 = new URL(start2.location).searchParams;
  rogue.onCode('own', { json: { access_token: 'at', token_type: 'Bearer', id_token: await rogue.sign(rogue.claims(a2.get('nonce'))) } });
  const ok = await request(`${gw.url}${callbackPath('rogue')}?code=own&state=${a2.get('state')}`, { jar: jar2 });
  assert.equal(ok.status, 302, show(ok));
  assert.ok(jar2.get('127.0.0.1', SESSION), 'a session');
  assert.equal(await signedInAs(jar2), 'rogue|mallory');
});
