// OIDC Back-Channel Logout 1.0 with node-oidc-provider: when the person's
// session ends at the provider (here: signing out on the provider's own
// page, not through the gateway), the provider POSTs a logout token to the
// gateway, which ends the person's sessions in every browser on every
// instance. Forged or misused logout tokens (another key, another audience,
// a nonce, no logout event, a replayed jti, a stale iat) end nothing.
//
// The provider's signing keys are in a file the test shares with it
// (IDP_KEYS_FILE), so the forged tokens below are signed exactly as the
// provider would sign them, with one thing wrong each.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request } from '../lib/http.mjs';
import { freePort, waitFor } from '../lib/procs.mjs';
import { startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { loginOk, show } from '../lib/gateway-flow.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';

const EVENT = 'http://schemas.openid.net/event/backchannel-logout';
let idp; let origin; let gw; let tmp; let keysFile; let endpoint;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-bcl-'));
  keysFile = path.join(tmp, 'idp-keys.json');
  const port = await freePort('127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  endpoint = `${url}/.edgeauth/backchannel-logout`;
  [idp, origin] = await Promise.all([
    startIdp({ gatewayUrls: [url], env: { IDP_BACKCHANNEL_LOGOUT_URI: endpoint, IDP_KEYS_FILE: keysFile } }),
    startOrigin(),
  ]);
  gw = await startGateway({ port, originUrl: origin.url, issuer: idp.issuer });
});
after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

const b64 = (v) => Buffer.from(JSON.stringify(v)).toString('base64url');

/** A JWT signed with `jwk` (a private JWK) as RS256. */
function sign(claims, jwk) {
  const head = b64({ alg: 'RS256', kid: jwk.kid, typ: 'logout+jwt' });
  const body = b64(claims);
  const key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), key).toString('base64url');
  return `${head}.${body}.${sig}`;
}

const idpRsaKey = () => JSON.parse(fs.readFileSync(keysFile, 'utf8')).keys.find((k) => k.kty === 'RSA');

/** The claims a genuine logout token for `sub` has. */
const genuine = (sub) => ({
  iss: idp.issuer, aud: 'edgeauth', iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID(),
  sub, events: { [EVENT]: {} },
});

const post = (token) => request(endpoint, {
  method: 'POST', accept: 'application/json',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ logout_token: token }).toString(),
});

async function signedIn(username = 'alice') {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/start', { username });
  assert.equal((await request(`${gw.url}/private`, { jar })).status, 200);
  return jar;
}

const statusOf = async (jar) => (await request(`${gw.url}/private`, { jar, accept: 'application/json' })).status;

test('signing out at the provider ends the person\'s gateway sessions in every browser', async () => {
  const here = await signedIn();
  const elsewhere = await signedIn();
  const bob = await signedIn('bob');
  // The provider's own sign-out page, in the first browser.
  const meta = JSON.parse((await request(`${idp.issuer}/.well-known/openid-configuration`)).body);
  const walk = await walkIdp(here, meta.end_session_endpoint, { logout: true });
  assert.ok(walk.hops.length, 'the provider\'s sign-out page was walked');
  await waitFor(async () => (await statusOf(here)) === 401, { what: 'the session in this browser ended' });
  assert.equal(await statusOf(elsewhere), 401, 'and in the other browser');
  assert.equal(await statusOf(bob), 200, 'another person stays signed in');
  // Signing in again works at once.
  assert.equal(await statusOf(await signedIn()), 200);
});

test('forged or misused logout tokens end nothing', async () => {
  const alice = await signedIn();
  const key = idpRsaKey();
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const stranger = { ...privateKey.export({ format: 'jwk' }), kid: key.kid };
  const forged = {
    'another key (same kid)': sign(genuine('alice'), stranger),
    'another audience': sign({ ...genuine('alice'), aud: 'someone-else' }, key),
    'another issuer': sign({ ...genuine('alice'), iss: 'http://127.0.0.1:1' }, key),
    'a nonce (an ID token)': sign({ ...genuine('alice'), nonce: 'n' }, key),
    'no logout event': sign({ ...genuine('alice'), events: { 'urn:other': {} } }, key),
    'no jti': sign({ ...genuine('alice'), jti: undefined }, key),
    'no sub or sid': sign({ ...genuine('alice'), sub: undefined }, key),
    'issued an hour ago': sign({ ...genuine('alice'), iat: Math.floor(Date.now() / 1000) - 3600 }, key),
    'not a JWT': 'abc.def',
  };
  for (const [what, token] of Object.entries(forged)) {
    const r = await post(token);
    assert.equal(r.status, 400, `${what}: ${show(r)}`);
    assert.equal(JSON.parse(r.body).error, 'invalid_request', what);
    assert.equal(await statusOf(alice), 200, `${what} ended the session`);
  }
  // GET and an unknown connection: not logout endpoints.
  assert.equal((await request(endpoint, { accept: 'application/json' })).status, 405);
  assert.equal((await request(`${endpoint}/nope`, { method: 'POST', body: 'logout_token=x' })).status, 404);

  // A genuine token works once; its replay is refused.
  const bob = await signedIn('bob');
  const token = sign(genuine('bob'), key);
  assert.equal((await post(token)).status, 200);
  assert.equal(await statusOf(bob), 401);
  const again = await signedIn('bob');
  const replay = await post(token);
  assert.equal(replay.status, 400, show(replay));
  assert.match(JSON.parse(replay.body).error_description, /used before/);
  assert.equal(await statusOf(again), 200, 'the replay ended nothing');
  assert.equal(await statusOf(alice), 200);
});
