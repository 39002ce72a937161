// Rotating the session and assertion keys across instances without logging
// anyone out (README.md, "Production", "Rotating keys"): two gateway
// instances sharing one real Redis (as in 98-shared-redis), restarted one at
// a time with each step's keys, the way a rolling update runs two
// configurations side by side. A person signs in before the rotation and
// keeps browsing through both instances at every step, including the
// moments when the two run different steps; each time they must be served
// (200 at the origin), and the assertion the origin received must verify
// against the JWKS of both instances (the origin may fetch it from either).
//
//   step 1  the new keys added last:  session old,new   assertion a-old,a-new
//   step 2  the new keys first:       session new,old   assertion a-new,a-old
//   step 3  the old keys dropped:     session new       assertion a-new
//
// With an idle timeout (re-issue every second) the person's cookie is
// re-sealed under whichever key is first, so after step 2 it carries `new`
// and survives step 3; a copy of their first cookie (sealed with `old`,
// never re-issued) is refused after step 3, which is why the README waits
// `session_lifetime_secs` before it. The control: skipping step 1 (one
// instance sealing and signing with keys the other does not know) sends
// people to sign in again there and gives the origin an assertion the other
// instance's JWKS cannot verify.
//
// Runs under both runtimes; needs Debian's redis-server on PATH (.ci/run
// installs it), skipped otherwise.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { CookieJar, request } from '../lib/http.mjs';
import { freePort, waitFor } from '../lib/procs.mjs';
import { startOrigin, startGateway, sessionKey, assertionKey } from '../lib/stack.mjs';
import { jarWithSession, sessionValue } from '../lib/gateway-flow.mjs';
import { redisMissing, startRedis } from '../lib/redis.mjs';
import { startHostileIdp } from '../security/lib/hostile-idp.mjs';
import { validSignIn, show } from '../security/lib/sec.mjs';

const why = redisMissing;
const opts = why ? { skip: why } : {};

const S = { old: sessionKey('old'), new: sessionKey('new'), skip: sessionKey('skip') };
const A = { old: assertionKey('ed25519', 'a-old'), new: assertionKey('es256', 'a-new'), skip: assertionKey('ed25519', 'a-skip') };

let redis; let origin; let op; let t; let publicUrl; let common;
/** The two instances by name, each on its own fixed port (restarts keep it). */
const gw = { A: null, B: null };
const ports = {};
/** The person signed in before the rotation, browsing throughout (one browser: one jar for both instances). */
let person;
/** A copy of their first cookie, sealed with `old` and never re-issued. */
let firstCookie;

before(async () => {
  if (why) return;
  redis = await startRedis();
  [origin, op] = await Promise.all([startOrigin(), startHostileIdp()]);
  t = op.tenant('rotation');
  [ports.A, ports.B] = [await freePort('127.0.0.1'), await freePort('127.0.0.1')];
  publicUrl = `http://127.0.0.1:${ports.A}`;
  common = {
    originUrl: origin.url, issuer: t.issuer, runtimeConfig: redis.runtimeConfig,
    // An idle timeout, so a cookie is re-issued (re-sealed with the first key) at most every second of use.
    vars: { public_url: publicUrl, session_idle_timeout_secs: '600', session_reissue_secs: '1' },
  };
  await Promise.all(['A', 'B'].map((n) => configure(n, [S.old], [A.old])));
});

after(async () => {
  await Promise.all(Object.values(gw).map((g) => g?.stop()));
  await Promise.all([origin?.stop(), op?.stop(), redis?.close()]);
});

/** (Re)starts instance `name` with these keys, on its port: one step of a rolling update. */
async function configure(name, sessionKeys, assertionKeys) {
  await gw[name]?.stop();
  gw[name] = null;
  gw[name] = await startGateway({ ...common, port: ports[name], sessionKeys, assertionKeys });
}

const kidOf = (cookieValue) => cookieValue?.split('.')[0];

async function jwksOf(name) {
  const r = await request(`${gw[name].url}/.edgeauth/jwks.json`, { accept: 'application/json' });
  assert.equal(r.status, 200, show(r));
  return JSON.parse(r.body);
}

/**
 * The person's request to /inside at instance `name`: it must reach the
 * origin as them, and the assertion the origin got must verify against the
 * JWKS every instance publishes right now. Returns the assertion's kid.
 */
async function served(name, jar = person, who = 'the person') {
  await origin.reset();
  const r = await request(`${gw[name].url}/inside`, { jar });
  assert.equal(r.status, 200, `${who} at instance ${name} (cookie kid ${kidOf(sessionValue(jar))}) was not served: ${show(r)}`);
  const seen = (await origin.requests()).at(-1);
  const jwt = seen?.headers['x-edgeauth-assertion'];
  assert.ok(jwt, `the origin got an assertion via ${name}`);
  for (const other of ['A', 'B']) {
    const jwks = await jwksOf(other);
    await jwtVerify(jwt, createLocalJWKSet(jwks), { issuer: publicUrl, audience: origin.url })
      .catch((e) => assert.fail(`the assertion via ${name} (kid ${decodeProtectedHeader(jwt).kid}) does not verify against `
        + `${other}'s JWKS (kids ${jwks.keys.map((k) => k.kid)}): ${e.code ?? e.message}`));
  }
  return decodeProtectedHeader(jwt).kid;
}

/** Browse at `name` until the cookie has been re-issued under session key `kid` (at most every second). */
async function reissuedUnder(name, kid) {
  await waitFor(async () => { await served(name); return kidOf(sessionValue(person)) === kid; },
    { timeoutMs: 15000, intervalMs: 250, what: `the cookie re-issued under ${kid} at ${name}` });
}

const kids = async (name) => (await jwksOf(name)).keys.map((k) => k.kid).sort();

test('before: a person signs in; both instances serve them', opts, async () => {
  person = new CookieJar();
  const s = await validSignIn(gw.A, t, { jar: person, claims: { sub: 'rotating-person' } });
  assert.equal(s.cb.status, 302, show(s.cb));
  firstCookie = sessionValue(person);
  assert.equal(kidOf(firstCookie), 'old');
  for (const n of ['A', 'B']) assert.equal(await served(n), 'a-old');
});

test('step 1, one instance at a time: the new keys added last; nobody is logged out', opts, async () => {
  await configure('A', [S.old, S.new], [A.old, A.new]);
  // A publishes a-new, B does not yet: nobody signs with it.
  assert.deepEqual(await kids('A'), ['a-new', 'a-old']);
  assert.deepEqual(await kids('B'), ['a-old']);
  for (const n of ['A', 'B', 'A']) assert.equal(await served(n), 'a-old', `step 1 half done, at ${n}`);
  assert.equal(kidOf(sessionValue(person)), 'old', 'the old key still seals');
  await configure('B', [S.old, S.new], [A.old, A.new]);
  for (const n of ['A', 'B']) {
    assert.deepEqual(await kids(n), ['a-new', 'a-old']);
    assert.equal(await served(n), 'a-old', `step 1 done, at ${n}`);
  }
});

test('step 2, one instance at a time: the new keys first; nobody is logged out', opts, async () => {
  await configure('A', [S.new, S.old], [A.new, A.old]);
  // Half done: A seals with `new` and signs with a-new; B (step 1) opens and publishes them.
  assert.equal(await served('A'), 'a-new');
  await reissuedUnder('A', 'new');
  assert.equal(await served('B'), 'a-old', 'B, still at step 1, serves the cookie A sealed with the new key');
  const later = new CookieJar();
  const s = await validSignIn(gw.A, t, { jar: later, claims: { sub: 'signed-in-at-step-2' } });
  assert.equal(s.cb.status, 302, show(s.cb));
  assert.equal(kidOf(sessionValue(later)), 'new');
  assert.equal(await served('B', later, 'someone signed in at A during step 2'), 'a-old');
  // Cookies still sealed with `old` work everywhere.
  for (const n of ['A', 'B']) await served(n, jarWithSession(firstCookie), 'a copy of the first cookie');

  await configure('B', [S.new, S.old], [A.new, A.old]);
  for (const n of ['A', 'B']) {
    assert.equal(await served(n), 'a-new', `step 2 done, at ${n}`);
    await served(n, later, 'someone signed in at A during step 2');
    await served(n, jarWithSession(firstCookie), 'a copy of the first cookie');
  }
  assert.equal(kidOf(sessionValue(person)), 'new');
});

test('step 3, one instance at a time: the old keys dropped; the person is still signed in', opts, async () => {
  await configure('A', [S.new], [A.new]);
  assert.deepEqual(await kids('A'), ['a-new']);
  for (const n of ['A', 'B', 'A']) assert.equal(await served(n), 'a-new', `step 3 half done, at ${n}`);
  await configure('B', [S.new], [A.new]);
  for (const n of ['A', 'B']) {
    assert.deepEqual(await kids(n), ['a-new']);
    assert.equal(await served(n), 'a-new', `step 3 done, at ${n}`);
  }
  // What step 3 does to a cookie still sealed with `old` (hence: wait the session lifetime first).
  for (const n of ['A', 'B']) {
    const r = await request(`${gw[n].url}/inside`, { jar: jarWithSession(firstCookie), accept: 'application/json' });
    assert.equal(r.status, 401, `a cookie sealed with the dropped key at ${n}: ${show(r)}`);
  }
});

test('control: skipping step 1 logs people out at the other instance and breaks the assertion there', opts, async () => {
  // A goes straight to keys B has never seen.
  await configure('A', [S.skip, S.new], [A.skip, A.new]);
  const jar = new CookieJar();
  const s = await validSignIn(gw.A, t, { jar, claims: { sub: 'signed-in-after-a-skipped-step' } });
  assert.equal(s.cb.status, 302, show(s.cb));
  assert.equal(kidOf(sessionValue(jar)), 'skip');
  const atB = await request(`${gw.B.url}/inside`, { jar, accept: 'application/json' });
  assert.equal(atB.status, 401, `B does not know the key A sealed with: ${show(atB)}`);
  // The assertion A signs names a kid B's JWKS lacks.
  await origin.reset();
  assert.equal((await request(`${gw.A.url}/inside`, { jar })).status, 200);
  const jwt = (await origin.requests()).at(-1).headers['x-edgeauth-assertion'];
  assert.equal(decodeProtectedHeader(jwt).kid, 'a-skip');
  await assert.rejects(jwtVerify(jwt, createLocalJWKSet(await jwksOf('B')), { issuer: publicUrl, audience: origin.url }),
    (e) => e.code === 'ERR_JWKS_NO_MATCHING_KEY', 'verifying against B\'s JWKS fails');
  // And the person browsing at A gets a cookie re-issued under `skip`, which B refuses.
  await waitFor(async () => {
    const r = await request(`${gw.A.url}/inside`, { jar: person });
    assert.equal(r.status, 200, show(r));
    return kidOf(sessionValue(person)) === 'skip';
  }, { timeoutMs: 15000, intervalMs: 250, what: 'the person\'s cookie re-issued under skip at A' });
  const personAtB = await request(`${gw.B.url}/inside`, { jar: person, accept: 'application/json' });
  assert.equal(personAtB.status, 401, `the person at B after A skipped step 1: ${show(personAtB)}`);
});
