// One profile per person: created at the first sign-in, found again at the
// next ones, its id sent to the origin (header and assertion) beside the
// connection's own subject, and kept in KV with its index.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, verifyAssertion, show, originSaw } from '../lib/gateway-flow.mjs';
import { readKv } from '../lib/kv.mjs';

let stack; let gw; let idp; let origin;

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp, origin } = stack);
});
after(() => stopStack(stack));

let n = 0;
/** The headers the origin got for one request with this session. */
async function headersSeen(jar, headers = {}) {
  const path = `/whoami/${++n}`;
  const r = await request(`${gw.url}${path}`, { jar, headers });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(origin, path);
  assert.ok(rec, `the origin got ${path}`);
  return rec.headers;
}

/** What the origin got for one request with this session. */
async function seen(jar) {
  const h = await headersSeen(jar);
  const { payload } = await verifyAssertion(gw, origin.url, h['x-edgeauth-assertion']);
  return { profile: h['x-auth-request-profile'], user: h['x-auth-request-user'], payload };
}

test('the first sign-in creates a profile; later sign-ins find the same one', async () => {
  const first = new CookieJar();
  await loginOk(gw, idp, first, '/whoami');
  const a = await seen(first);
  assert.match(a.profile ?? '', /^p_[a-z2-7]{26}$/, 'the origin gets a profile id');
  assert.equal(a.payload.profile_id, a.profile, 'the assertion carries the same id');
  assert.equal(a.payload.sub, a.user);
  assert.equal(a.payload.idp_sub, 'alice');
  assert.equal(a.payload.connection, 'default');

  const again = new CookieJar();
  await loginOk(gw, idp, again, '/whoami');
  assert.equal((await seen(again)).profile, a.profile, 'the same person, the same profile');

  const bob = new CookieJar();
  await loginOk(gw, idp, bob, '/whoami', { username: 'bob' });
  const b = await seen(bob);
  assert.match(b.profile ?? '', /^p_/);
  assert.notEqual(b.profile, a.profile, 'another person, another profile');

  const kv = readKv(gw.stateDir);
  const stored = JSON.parse(Buffer.from(kv[`profile:default:${a.profile}`], 'base64').toString());
  assert.equal(stored.logins, 2);
  assert.deepEqual(stored.identities.map((i) => [i.connection, i.subject]), [['default', 'alice']]);
  assert.ok(stored.emails.some((e) => e.verified && e.address === 'alice@example.com'), JSON.stringify(stored.emails));
  assert.equal(stored.first_login.connection, 'default');
  const bobStored = JSON.parse(Buffer.from(kv[`profile:default:${b.profile}`], 'base64').toString());
  assert.ok(bobStored.emails.every((e) => !e.verified), 'bob\'s unverified email stays unverified');
  const emailIndex = Object.keys(kv).filter((k) => k.startsWith('profile-email:default:'));
  assert.equal(emailIndex.length, 1, 'only verified emails are indexed');
});

test('a client cannot send its own profile header to the origin', async () => {
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/whoami');
  const mine = (await seen(jar)).profile;
  for (const name of ['X-Auth-Request-Profile', 'x-auth-request_profile', 'X_AUTH_REQUEST_PROFILE']) {
    const h = await headersSeen(jar, { [name]: 'p_aaaaaaaaaaaaaaaaaaaaaaaaaa' });
    assert.equal(h['x-auth-request-profile'], mine, `${name}: the gateway's value only`);
    assert.ok(!Object.keys(h).some((k) => k !== 'x-auth-request-profile' && k.replace(/_/g, '-').toLowerCase() === 'x-auth-request-profile'), name);
  }
  const anon = await request(`${gw.url}/public-nothing`, { jar: new CookieJar(), headers: { 'X-Auth-Request-Profile': 'p_x' } });
  assert.notEqual(anon.status, 200);
});
