// Several gateway instances sharing one state: two instances whose KV store
// is one real Redis (Spin's runtime config, `type = "redis"`, which `spin up`
// and the project's host both read), the way instances behind a load
// balancer run. Both have the same settings and public URL; each request is
// sent to the instance the test names. What one instance writes
// (revocations, single-use markers) must hold on the other: a session from
// one is accepted by the other, a logout through one is refused by the other,
// a callback used at one cannot be replayed at the other, a rule artifact
// uploaded through one is used by the other, and a sign-in paused there
// resumes on the first. The provider is the scripted one, which redeems a
// code any number of times, so only the gateway's shared marker stands
// between a replay and a second session; a control pair of instances with
// their own local stores shows that the replay test can fail.
// tests/e2e/98-load-balancer.test.mjs puts three instances behind nginx.
//
// Runs under both runtimes; needs Debian's redis-server on PATH (.ci/run
// installs it), skipped otherwise.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { freePort } from '../lib/procs.mjs';
import { startOrigin, startGateway, sessionKey, assertionKey } from '../lib/stack.mjs';
import { LOGIN, SESSION, jarWithSession, sessionValue } from '../lib/gateway-flow.mjs';
import { prepareRules } from '../lib/rules.mjs';
import { redisMissing, startRedis } from '../lib/redis.mjs';
import { startHostileIdp } from '../security/lib/hostile-idp.mjs';
import { tokenAnswer, validSignIn, show } from '../security/lib/sec.mjs';

const why = redisMissing;
const opts = why ? { skip: why } : {};

let redis; let origin; let op; let t; let a; let b; let soloA; let soloB;
let rules; let ruleA; let ruleB; let runtimeConfig; let common;

before(async () => {
  if (why) return;
  redis = await startRedis();
  ({ runtimeConfig } = redis);
  [origin, op] = await Promise.all([startOrigin(), startHostileIdp()]);
  t = op.tenant('shared');
  // One configuration for every instance, as behind a load balancer.
  const keys = { sessionKeys: [sessionKey()], assertionKeys: [assertionKey()] };
  const aPort = await freePort('127.0.0.1');
  const publicUrl = `http://127.0.0.1:${aPort}`;
  common = { originUrl: origin.url, issuer: t.issuer, ...keys, vars: { public_url: publicUrl } };
  [a, b] = await Promise.all([
    startGateway({ port: aPort, runtimeConfig, ...common }),
    startGateway({ runtimeConfig, ...common }),
  ]);
  // The control: the same, but each instance with its own local store.
  const soloPort = await freePort('127.0.0.1');
  const solo = { ...common, vars: { public_url: `http://127.0.0.1:${soloPort}` } };
  [soloA, soloB] = await Promise.all([startGateway({ port: soloPort, ...solo }), startGateway(solo)]);
});

after(async () => {
  await Promise.all([a, b, soloA, soloB, ruleA, ruleB].map((g) => g?.stop()));
  rules?.cleanup();
  await Promise.all([origin?.stop(), op?.stop(), redis?.close()]);
});

const copyOf = (jar) => jarWithSession(sessionValue(jar));

test('a session signed in through one instance is accepted by the other', opts, async () => {
  const jar = new CookieJar();
  const s = await validSignIn(a, t, { jar, claims: { sub: 'roamer' } });
  assert.equal(s.cb.status, 302, show(s.cb));
  await origin.reset();
  const r = await request(`${b.url}/inside`, { jar: copyOf(jar) });
  assert.equal(r.status, 200, show(r));
  const seen = (await origin.requests()).at(-1);
  assert.equal(seen.headers['x-auth-request-user'], 'roamer');
});

test('after logout through one instance, a copy of the cookie is refused by the other', opts, async () => {
  const jar = new CookieJar();
  assert.equal((await validSignIn(b, t, { jar, claims: { sub: 'leaver' } })).cb.status, 302);
  const copy = copyOf(jar);
  assert.equal((await request(`${a.url}/inside`, { jar: copyOf(jar) })).status, 200, 'the copy works before the logout');
  const out = await request(`${b.url}/.edgeauth/logout?rd=/`, { jar });
  assert.equal(out.status, 302, show(out));
  for (const gw of [a, b]) {
    const r = await request(`${gw.url}/inside`, { jar: copyOf(copy), headers: { Accept: 'application/json' } });
    assert.equal(r.status, 401, `the logged-out copy at ${gw === a ? 'the other' : 'the same'} instance: ${show(r)}`);
  }
});

/** Starts a sign-in at `first`; its callback target and login cookie, with the code set to be redeemable. */
async function pendingCallback(first, sub) {
  const jar = new CookieJar();
  const start = await request(`${first.url}/.edgeauth/login?rd=%2F`, { jar });
  assert.equal(start.status, 302, show(start));
  const params = new URL(start.location).searchParams;
  const code = `c-${crypto.randomBytes(9).toString('base64url')}`;
  t.onCode(code, tokenAnswer(await t.sign(t.claims(params.get('nonce'), { sub }))));
  return {
    target: `/.edgeauth/callback?code=${code}&state=${encodeURIComponent(params.get('state'))}`,
    cookie: `${LOGIN}=${jar.get('127.0.0.1', LOGIN).value}`,
  };
}

const sessionSet = (r) => r.headers.some(([k, v]) => k === 'set-cookie' && new RegExp(`^${SESSION}=[^;]+`).test(v));
const callback = (gw, cb) => rawRequest(gw.url, { target: cb.target, headers: [['Cookie', cb.cookie]], timeoutMs: 30000 });

test('a callback used at one instance is refused when replayed at the other', opts, async () => {
  // Control: instances with their own stores accept the replay (the provider
  // redeems the code again), which is what the shared store prevents.
  const solo = await pendingCallback(soloA, 'solo');
  assert.ok(sessionSet(await callback(soloA, solo)));
  assert.ok(sessionSet(await callback(soloB, solo)), 'control: separate stores let the replay through');

  const cb = await pendingCallback(a, 'once');
  const first = await callback(a, cb);
  assert.equal(first.status, 302);
  assert.ok(sessionSet(first), 'the first use signs in');
  const replay = await callback(b, cb);
  assert.ok(!sessionSet(replay), `the replay at the other instance signed in: ${replay.status}`);
  assert.ok(replay.status >= 400, `replay: ${replay.status}`);
});

test('a callback fired at both instances at once signs in once (20 pairs)', opts, async () => {
  const doubled = [];
  const none = [];
  for (let i = 0; i < 20; i++) {
    const cb = await pendingCallback(i % 2 ? a : b, `racer-${i}`);
    const both = await Promise.all([callback(a, cb), callback(b, cb)]);
    const n = both.filter(sessionSet).length;
    if (n > 1) doubled.push(`pair ${i}: ${both.map((r) => r.status)}`);
    if (n === 0) none.push(`pair ${i}: ${both.map((r) => r.status)}`);
  }
  assert.deepEqual(doubled, [], `${doubled.length} of 20 callbacks signed in twice across instances`);
  assert.deepEqual(none, [], 'each pair still signs in once');
});

test('a rule uploaded through one instance runs on the other, and a sign-in it paused there resumes on the first', opts, async () => {
  rules = await prepareRules({ profile: 'progressive_profile' });
  // A second pair on the same Redis, with a rule that pauses the first sign-in for a form.
  const port = await freePort('127.0.0.1');
  const vars = { ...rules.vars([{ name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 1 } }],
    { routes: JSON.stringify([{ path: '/profile-form', public: true }]) }), public_url: `http://127.0.0.1:${port}` };
  [ruleA, ruleB] = await Promise.all([
    startGateway({ ...common, port, runtimeConfig, vars }),
    startGateway({ ...common, runtimeConfig, vars }),
  ]);
  await rules.upload(ruleA);
  const jar = new CookieJar();
  const s = await validSignIn(ruleB, t, { jar, claims: { sub: `pauser-${crypto.randomBytes(4).toString('hex')}` } });
  assert.equal(s.cb.status, 302, show(s.cb));
  const form = new URL(s.cb.location);
  assert.equal(form.pathname, '/profile-form', `the rule uploaded through the other instance paused the sign-in: ${show(s.cb)}`);
  const resumed = await request(`${ruleA.url}/.edgeauth/continue?state=${encodeURIComponent(form.searchParams.get('state'))}&company=Acme`, { jar });
  assert.equal(resumed.status, 302, show(resumed));
  assert.ok(sessionValue(jar), `resuming on the other instance signs in: ${show(resumed)}`);
  assert.equal((await request(`${ruleB.url}/inside`, { jar })).status, 200, 'and the session works on both');
});
