// The profiles' admin API and `edgeauth profiles` CLI (README "Profile
// admin API") through the real gateway: two tenants from the `tenants`
// variable (`acme` at http://127.0.0.1:PORT, `globex` at
// http://localhost:PORT), people signed in through the dev IdP, and
// profiles written to KV before start (an import of IMPORTED people and a
// profile with two identities) to export and unlink.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { freePort } from '../lib/procs.mjs';
import { HOST_BIN, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { show, loginOk, originSaw } from '../lib/gateway-flow.mjs';
import { readKv, writeKv } from '../lib/kv.mjs';

const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const IMPORTED = 23;
const run = promisify(execFile);

let idp; let origin; let gw; let acme; let globex;

const b32 = 'abcdefghijklmnopqrstuvwxyz234567';
const newId = () => `p_${[...crypto.randomBytes(26)].map((b) => b32[b & 31]).join('')}`;
const hashed = (s) => crypto.createHash('sha256').update(s).digest('base64url');
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64');
const counter = (n) => { const b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(n)); return b.toString('base64'); };
const profileDoc = (id, identities) => ({
  id, created_at: 1, emails: [], user_metadata: {}, app_metadata: {}, logins: 1,
  identities: identities.map(([connection, subject]) => ({ connection, subject, claims: {}, linked_at: 1 })),
  first_login: { at: 1, connection: identities[0][0] }, last_login: { at: 1, connection: identities[0][0] },
});

const imported = [];
const twoWays = newId(); // bob through the IdP, and a GitHub account

const admin = (method, target, { token = ADMIN_TOKEN, body } = {}) => {
  const headers = [];
  if (token !== null) headers.push(['Authorization', `Bearer ${token}`]);
  if (body !== undefined) headers.push(['Content-Type', 'application/json']);
  return rawRequest(acme.url, {
    method, target: `/.edgeauth/admin/profiles${target}`, headers,
    body: body === undefined ? null : (typeof body === 'string' ? body : JSON.stringify(body)),
  }).then((r) => ({ ...r, json: () => JSON.parse(r.body) }));
};
const cli = async (args) => (await run(HOST_BIN, ['profiles', ...args], {
  env: { ...process.env, EDGEAUTH_GATEWAY: acme.url, EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN }, encoding: 'utf8',
})).stdout;

let seq = 0;
/** Signs `username` in on `site` and returns the profile id the origin got. */
async function signIn(site, username = 'alice') {
  const jar = new CookieJar();
  await loginOk(site, idp, jar, '/start', { username });
  const p = `/who/${++seq}`;
  const r = await request(`${site.url}${p}`, { jar });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(origin, p);
  assert.match(rec.headers['x-auth-request-profile'] ?? '', /^p_[a-z2-7]{26}$/);
  return rec.headers['x-auth-request-profile'];
}

/** Every profile of `tenant`, paging with `limit`: [ids in order, pages]. */
async function exportAll(tenant, limit) {
  const ids = []; let cursor = null; let pages = 0;
  for (;;) {
    const r = await admin('GET', `/${tenant}?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
    assert.equal(r.status, 200, r.body);
    assert.match(r.header('content-type'), /application\/x-ndjson/);
    const lines = r.body.split('\n').filter(Boolean);
    assert.ok(lines.length <= limit, `a page holds at most ${limit}`);
    ids.push(...lines.map((l) => JSON.parse(l).id));
    pages++;
    cursor = r.header('edgeauth-next-cursor');
    if (!cursor) return [ids, pages];
  }
}

before(async () => {
  const port = await freePort('127.0.0.1');
  acme = { url: `http://127.0.0.1:${port}` };
  globex = { url: `http://localhost:${port}` };
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [acme.url, globex.url] }), startOrigin()]);
  // Before start: IMPORTED profiles of acme in its export list, an entry
  // naming a profile that no longer exists, and bob's two-identity profile.
  const kv = {};
  for (let i = 1; i <= IMPORTED; i++) {
    const id = newId();
    imported.push(id);
    kv[`profile:acme:${id}`] = b64(profileDoc(id, [['import', `u${i}`]]));
    kv[`profile-list:acme:${i}`] = b64(id);
  }
  kv[`profile-list:acme:${IMPORTED + 1}`] = b64(newId());
  kv[`profile:acme:${twoWays}`] = b64(profileDoc(twoWays, [['default', 'bob'], ['github', '999']]));
  kv[`profile-identity:acme:${hashed('default|bob')}`] = b64(twoWays);
  kv[`profile-identity:acme:${hashed('github|999')}`] = b64(twoWays);
  kv[`profile-list:acme:${IMPORTED + 2}`] = b64(twoWays);
  kv['profile-seq:acme'] = counter(IMPORTED + 2);
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-profile-admin-'));
  writeKv(stateDir, kv);
  gw = await startGateway({
    port, originUrl: origin.url, issuer: idp.issuer, stateDir,
    vars: {
      admin_token: ADMIN_TOKEN,
      tenants: JSON.stringify({
        acme: { public_url: acme.url, name: 'Acme' },
        globex: { public_url: globex.url, name: 'Globex' },
      }),
    },
  });
});
after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
});

test('without the admin token every call is 401', async () => {
  for (const token of [null, 'wrong', `${ADMIN_TOKEN}x`]) {
    for (const [method, target] of [['GET', '/acme'], ['GET', `/acme/${twoWays}`], ['DELETE', `/acme/${twoWays}`],
      ['PATCH', `/acme/${twoWays}`]]) {
      const r = await admin(method, target, { token, body: method === 'PATCH' ? { user_metadata: { a: 1 } } : undefined });
      assert.equal(r.status, 401, `${method} ${target} with ${token}`);
      assert.equal(r.header('www-authenticate'), 'Bearer');
    }
  }
  const r = await admin('GET', `/acme/${twoWays}`);
  assert.equal(r.status, 200, 'untouched by the refused calls');
});

let aliceAcme; let aliceGlobex; let bobNew;

test('find by email and by connection subject, through trusted indexes, per tenant', async () => {
  aliceAcme = await signIn(acme);
  aliceGlobex = await signIn(globex);
  assert.notEqual(aliceAcme, aliceGlobex, 'one profile per tenant');
  assert.equal(await signIn(acme, 'bob'), twoWays, 'bob\'s sign-in finds his stored profile');

  let r = await admin('GET', '/acme?email=alice%40EXAMPLE.com');
  assert.equal(r.status, 200, r.body);
  assert.equal(r.json().id, aliceAcme);
  assert.ok(r.json().emails.some((e) => e.address === 'alice@example.com' && e.verified));
  r = await admin('GET', '/globex?email=alice%40example.com');
  assert.equal(r.json().id, aliceGlobex, 'the other tenant finds its own alice');
  assert.equal((await admin('GET', '/acme?email=bob%40example.com')).status, 404, 'an unverified email is not indexed');
  assert.equal((await admin('GET', '/acme?email=Alice%40example.com')).status, 404, 'the local part is exact');
  r = await admin('GET', '/acme?connection=default&subject=bob');
  assert.equal(r.json().id, twoWays);
  r = await admin('GET', '/acme?connection=default&subject=alice');
  assert.equal(r.json().id, aliceAcme);
  assert.equal((await admin('GET', '/acme?connection=default')).status, 400);
  assert.match((await admin('GET', '/acme?connection=default')).json().message, /subject/);
  const found = JSON.parse(await cli(['find', 'acme', '--connection', 'github', '--subject', '999']));
  assert.equal(found.id, twoWays);
});

test('no call reaches another tenant\'s profiles; unknown tenants are 404', async () => {
  for (const [method, body] of [['GET'], ['PATCH', { app_metadata: { stolen: true } }], ['DELETE']]) {
    const r = await admin(method, `/globex/${aliceAcme}`, { body });
    assert.equal(r.status, 404, `${method} acme's profile under globex: ${r.body}`);
  }
  const r = await admin('DELETE', `/globex/${twoWays}/identities/github/999`);
  assert.equal(r.status, 404);
  assert.equal((await admin('GET', `/acme/${aliceAcme}`)).json().app_metadata.stolen, undefined);
  const none = await admin('GET', `/nosuch/${aliceAcme}`);
  assert.equal(none.status, 404);
  assert.match(none.json().message, /no tenant `nosuch`/);
  assert.equal((await admin('GET', '/default?email=alice%40example.com')).status, 404,
    'with tenants configured there is no default tenant');
  const [ids] = await exportAll('globex', 10);
  assert.deepEqual(ids, [aliceGlobex], 'globex exports only its own');
});

test('patch metadata (merge patch) and read it back; bad patches say what is wrong', async () => {
  let r = await admin('PATCH', `/acme/${aliceAcme}`, {
    body: { user_metadata: { lang: 'fr', prefs: { news: true } }, app_metadata: { plan: 'pro' } },
  });
  assert.equal(r.status, 200, r.body);
  r = await admin('PATCH', `/acme/${aliceAcme}`, { body: { user_metadata: { lang: null, prefs: { dark: true } } } });
  assert.equal(r.status, 200, r.body);
  const back = (await admin('GET', `/acme/${aliceAcme}`)).json();
  assert.deepEqual(back.user_metadata, { prefs: { news: true, dark: true } });
  assert.deepEqual(back.app_metadata, { plan: 'pro' });
  fs.writeFileSync(path.join(os.tmpdir(), `patch-${process.pid}.json`), JSON.stringify({ app_metadata: { tier: 2 } }));
  const cliOut = JSON.parse(await cli(['patch', 'acme', aliceAcme, path.join(os.tmpdir(), `patch-${process.pid}.json`)]));
  fs.rmSync(path.join(os.tmpdir(), `patch-${process.pid}.json`));
  assert.deepEqual(cliOut.app_metadata, { plan: 'pro', tier: 2 });

  for (const [body, field] of [[{ name: 'Mallory' }, 'name'], [{ user_metadata: 'x' }, 'user_metadata'],
    [{ app_metadata: { big: 'x'.repeat(17000) } }, 'app_metadata'], ['not json', undefined]]) {
    r = await admin('PATCH', `/acme/${aliceAcme}`, { body });
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json().field, field, r.body);
  }
  assert.deepEqual((await admin('GET', `/acme/${aliceAcme}`)).json().app_metadata, { plan: 'pro', tier: 2 });
});

test('unlink: the identity leaves the profile and its next sign-in makes a new one', async () => {
  const idx = `profile-identity:acme:${hashed('default|bob')}`;
  assert.ok(readKv(gw.stateDir)[idx]);
  let r = await admin('DELETE', `/acme/${twoWays}/identities/default/bob`);
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(r.json().identities.map((i) => [i.connection, i.subject]), [['github', '999']]);
  assert.equal(readKv(gw.stateDir)[idx], undefined, 'its index is gone');
  assert.equal((await admin('GET', '/acme?connection=default&subject=bob')).status, 404);
  bobNew = await signIn(acme, 'bob');
  assert.notEqual(bobNew, twoWays, 'a new profile');
  assert.equal((await admin('GET', '/acme?connection=default&subject=bob')).json().id, bobNew);
  assert.deepEqual((await admin('GET', `/acme/${twoWays}`)).json().identities.map((i) => i.connection), ['github']);
  r = await admin('DELETE', `/acme/${twoWays}/identities/github/999`);
  assert.equal(r.status, 409, 'the last identity: erase instead');
  assert.equal((await admin('DELETE', `/acme/${twoWays}/identities/default/bob`)).status, 404);
  assert.match(await cli(['unlink', 'acme', bobNew, 'default', 'bob']).catch((e) => e.stderr), /only identity/);
});

test('log out everywhere: every session of the person ends at once; signing in again works at once', async () => {
  const browsers = [new CookieJar(), new CookieJar()];
  for (const jar of browsers) {
    await loginOk(acme, idp, jar, '/start');
    assert.equal((await request(`${acme.url}/private`, { jar })).status, 200);
  }
  const globexJar = new CookieJar();
  await loginOk(globex, idp, globexJar, '/start');
  assert.match(await cli(['logout', 'acme', aliceAcme]), /every session of profile/);
  for (const jar of browsers) {
    const r = await request(`${acme.url}/private`, { jar, accept: 'application/json' });
    assert.equal(r.status, 401, show(r));
  }
  assert.equal((await request(`${globex.url}/private`, { jar: globexJar })).status, 200, 'globex\'s alice is another person');
  // The same second as the revocation: the new session is not caught by it.
  const again = new CookieJar();
  await loginOk(acme, idp, again, '/start');
  const r = await request(`${acme.url}/private`, { jar: again });
  assert.equal(r.status, 200, show(r));
  assert.equal(await signIn(acme), aliceAcme, 'the same profile');
  assert.equal((await admin('DELETE', `/acme/${aliceAcme}/sessions`, { token: 'wrong' })).status, 401);
  assert.equal((await admin('DELETE', '/acme/p_aaaaaaaaaaaaaaaaaaaaaaaaaa/sessions')).status, 404);
});

test('the person\'s sessions are listed (when, where, how) and one can be ended alone', async () => {
  const agents = ['Phone/1.0', 'Laptop/2.0'];
  const jars = [];
  for (const ua of agents) {
    const jar = new CookieJar();
    await loginOk(acme, idp, jar, '/start', { userAgent: ua });
    jars.push(jar);
  }
  const listed = JSON.parse(await cli(['sessions', 'acme', aliceAcme])).sessions;
  const mine = listed.filter((x) => agents.includes(x.user_agent));
  assert.equal(mine.length, 2, JSON.stringify(listed));
  for (const x of mine) {
    assert.match(x.id, /^[A-Za-z0-9_-]{24}$/);
    assert.equal(x.connection, 'default');
    assert.equal(x.ip, '127.0.0.1');
    assert.ok(x.expires_at > x.signed_in_at);
  }
  const phone = mine.find((x) => x.user_agent === 'Phone/1.0');
  assert.match(await cli(['logout', 'acme', aliceAcme, phone.id]), /is revoked/);
  const [phoneJar, laptopJar] = jars;
  assert.equal((await request(`${acme.url}/private`, { jar: phoneJar, accept: 'application/json' })).status, 401, 'the phone is signed out');
  assert.equal((await request(`${acme.url}/private`, { jar: laptopJar })).status, 200, 'the laptop is not');
  const after = JSON.parse(await cli(['sessions', 'acme', aliceAcme])).sessions;
  assert.ok(!after.some((x) => x.id === phone.id), 'the ended session is no longer listed');
  assert.equal((await admin('DELETE', `/acme/${aliceAcme}/sessions/${phone.id}`)).status, 404, 'already ended');
  assert.equal((await admin('DELETE', `/acme/${aliceAcme}/sessions/not-an-id`)).status, 400);
});

test('erasure removes the profile and every index naming it; the next sign-in starts afresh', async () => {
  const before = readKv(gw.stateDir);
  const naming = (kv) => Object.entries(kv)
    .filter(([k, v]) => /^profile-(identity|email):/.test(k) && Buffer.from(v, 'base64').toString() === aliceAcme);
  assert.equal(naming(before).length, 2, 'alice has an identity and an email index');
  const seen = `login-seen:acme:${hashed('alice')}`;
  assert.ok(before[seen], 'the first-login marker of alice');
  // Alice is signed in (two browsers) when her profile is erased.
  const browsers = [new CookieJar(), new CookieJar()];
  for (const jar of browsers) {
    await loginOk(acme, idp, jar, '/start');
    const live = await request(`${acme.url}/private`, { jar });
    assert.equal(live.status, 200, show(live));
  }
  const r = await admin('DELETE', `/acme/${aliceAcme}`);
  assert.equal(r.status, 200, r.body);
  for (const jar of browsers) {
    const after = await request(`${acme.url}/private`, { jar, accept: 'application/json' });
    assert.equal(after.status, 401, `an erased person's session is refused: ${show(after)}`);
  }
  const kv = readKv(gw.stateDir);
  assert.equal(kv[`profile:acme:${aliceAcme}`], undefined);
  assert.deepEqual(naming(kv), []);
  assert.equal(kv[seen], undefined, 'the first-login marker goes too');
  assert.equal((await admin('GET', `/acme/${aliceAcme}`)).status, 404);
  assert.equal((await admin('GET', '/acme?email=alice%40example.com')).status, 404);
  assert.equal((await admin('GET', `/globex/${aliceGlobex}`)).status, 200, 'globex\'s alice stays');
  assert.equal((await admin('DELETE', `/acme/${aliceAcme}`)).status, 404);
  const fresh = await signIn(acme);
  assert.notEqual(fresh, aliceAcme);
  const got = (await admin('GET', '/acme?email=alice%40example.com')).json();
  assert.equal(got.id, fresh);
  assert.equal(got.logins, 1);
  assert.deepEqual(got.user_metadata, {}, 'nothing of the erased profile comes back');
  aliceAcme = fresh;
});

test('export pages through every profile exactly once, skipping erased ones', async () => {
  const expected = Object.keys(readKv(gw.stateDir))
    .filter((k) => k.startsWith('profile:acme:')).map((k) => k.slice('profile:acme:'.length)).sort();
  assert.equal(expected.length, IMPORTED + 3, 'imported, bob twice, alice (erased once)');
  for (const id of [...imported, twoWays, bobNew, aliceAcme]) assert.ok(expected.includes(id), id);
  const [ids, pages] = await exportAll('acme', 4);
  assert.equal(new Set(ids).size, ids.length, 'no profile twice');
  assert.deepEqual([...ids].sort(), expected);
  assert.ok(pages >= Math.ceil((IMPORTED + 4) / 4), `${pages} pages`);
  const lines = (await cli(['export', 'acme', '--limit', '3'])).split('\n').filter(Boolean);
  assert.deepEqual(lines.map((l) => JSON.parse(l).id).sort(), expected);
  for (const bad of ['limit=0', 'limit=501', 'cursor=0', 'cursor=x']) {
    const r = await admin('GET', `/acme?${bad}`);
    assert.equal(r.status, 400, bad);
    assert.match(r.json().message, /cursor|limit/);
  }
});
