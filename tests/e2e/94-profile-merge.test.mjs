// Merging two profiles through the admin API (`POST .../<tenant>/<target>/merge`,
// `edgeauth profiles merge`): one person who signed in through two
// connections (two real providers, account linking off, so two profiles)
// becomes one profile. Afterwards both ways in land on the target's id at
// the origin, a find by either identity returns it, and the source is gone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { HOST_BIN } from '../lib/stack.mjs';
import { waitFor } from '../lib/procs.mjs';
import { startFederation, signInWith } from '../lib/federation.mjs';
import { originSaw, show } from '../lib/gateway-flow.mjs';
import { readKv } from '../lib/kv.mjs';

const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);

let fed; let gw;

before(async () => {
  fed = await startFederation({ vars: { admin_token: ADMIN_TOKEN } });
  gw = fed.gateway;
});
after(() => fed?.stop());

const admin = (method, target, body) => rawRequest(gw.url, {
  method,
  target: `/.edgeauth/admin/profiles${target}`,
  headers: [['Authorization', `Bearer ${ADMIN_TOKEN}`], ...(body === undefined ? [] : [['Content-Type', 'application/json']])],
  body: body === undefined ? null : (typeof body === 'string' ? body : JSON.stringify(body)),
}).then((r) => ({ ...r, json: () => JSON.parse(r.body) }));

const cli = async (args) => (await run(HOST_BIN, ['profiles', ...args], {
  env: { ...process.env, EDGEAUTH_GATEWAY: gw.url, EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN }, encoding: 'utf8',
})).stdout;

let n = 0;
/** Signs in through connection `id` as `username`; the profile id the origin gets. */
async function profileOf(id, username) {
  const jar = new CookieJar();
  const { callback } = await signInWith(fed, jar, id, { username, password: `${username}-pw` });
  assert.equal(callback.status, 302, `${id}/${username}: ${show(callback)}`);
  const path = `/who/${++n}`;
  const r = await request(`${gw.url}${path}`, { jar });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(fed.origin, path);
  return rec.headers['x-auth-request-profile'];
}

test('two profiles of one person merge into the target; both connections then land on it', async () => {
  const target = await profileOf('enterprise', 'carol');
  // Login times have whole seconds: the source's sign-ins come in a later
  // second, so "the later last login" is the source's.
  const second = Math.floor(Date.now() / 1000);
  await waitFor(() => Math.floor(Date.now() / 1000) > second, { what: 'the next second', intervalMs: 20 });
  const source = await profileOf('social', 'alice');
  await profileOf('social', 'alice'); // a second login of the source
  assert.match(target, /^p_[a-z2-7]{26}$/);
  assert.notEqual(source, target, 'linking is off: two profiles');
  assert.equal((await admin('PATCH', `/default/${target}`, { user_metadata: { lang: 'fr' } })).status, 200);
  assert.equal((await admin('PATCH', `/default/${source}`, { user_metadata: { lang: 'de', theme: 'dark' }, app_metadata: { crm: 7 } })).status, 200);
  const before = { t: (await admin('GET', `/default/${target}`)).json(), s: (await admin('GET', `/default/${source}`)).json() };

  const merged = JSON.parse(await cli(['merge', 'default', target, source]));
  assert.equal(merged.id, target);
  assert.equal(merged.created_at, before.t.created_at, 'the target keeps its creation');
  assert.deepEqual(merged.identities.map((i) => `${i.connection}|${i.subject}`), ['enterprise|carol', 'social|alice']);
  assert.deepEqual(merged.user_metadata, { lang: 'fr', theme: 'dark' }, 'the target\'s values win, the source\'s other keys join');
  assert.deepEqual(merged.app_metadata, { crm: 7 });
  assert.equal(merged.logins, before.t.logins + before.s.logins, 'logins add up');
  // Login times are in seconds: on a tie the target's stays.
  const first = before.s.first_login.at < before.t.first_login.at ? before.s : before.t;
  const last = before.s.last_login.at > before.t.last_login.at ? before.s : before.t;
  assert.deepEqual(merged.first_login, first.first_login, 'the earlier first login');
  assert.deepEqual(merged.last_login, last.last_login, 'the later last login');
  assert.equal(merged.last_ip, last.last_ip);
  assert.ok(merged.emails.some((e) => e.address === 'alice@example.com' && e.verified));

  // The source is gone; every way to it leads to the target.
  assert.equal((await admin('GET', `/default/${source}`)).status, 404);
  for (const q of ['connection=social&subject=alice', 'connection=enterprise&subject=carol', 'email=alice%40example.com', 'email=carol%40acme.test']) {
    const r = await admin('GET', `/default?${q}`);
    assert.equal(r.status, 200, `${q}: ${r.body}`);
    assert.equal(r.json().id, target, q);
  }
  const kv = readKv(gw.stateDir);
  assert.equal(kv[`profile:default:${source}`], undefined, 'the source profile is deleted');
  const naming = Object.entries(kv).filter(([k, v]) => /^profile-(identity|email):/.test(k)
    && Buffer.from(v, 'base64').toString() === source);
  assert.deepEqual(naming, [], 'no index names the source');
  assert.equal(await profileOf('social', 'alice'), target, 'the source\'s connection lands on the target');
  assert.equal(await profileOf('enterprise', 'carol'), target, 'and the target\'s own');
  const after = (await admin('GET', `/default/${target}`)).json();
  assert.equal(after.logins, merged.logins + 2);
  assert.equal(after.identities.length, 2, 'no identity added twice');

  // Export lists the merged profile once and the source not at all.
  const ids = (await cli(['export', 'default'])).split('\n').filter(Boolean).map((l) => JSON.parse(l).id);
  assert.deepEqual(ids.filter((id) => id === target || id === source), [target]);
});

test('a merge says what is wrong: unknown ids 404, itself and bad bodies 400', async () => {
  const a = await profileOf('enterprise', 'alice');
  const ghost = `p_${'a'.repeat(26)}`;
  let r = await admin('POST', `/default/${a}/merge`, { from: ghost });
  assert.equal(r.status, 404, r.body);
  assert.match(r.json().message, new RegExp(ghost));
  r = await admin('POST', `/default/${ghost}/merge`, { from: a });
  assert.equal(r.status, 404, r.body);
  r = await admin('POST', `/default/${a}/merge`, { from: a });
  assert.equal(r.status, 400, r.body);
  assert.equal(r.json().error, 'same_profile');
  assert.match(r.json().message, /itself/);
  for (const body of ['{"from": "p_nope"}', '{}', 'nope', JSON.stringify({ from: a, extra: 1 })]) {
    r = await admin('POST', `/default/${a}/merge`, body);
    assert.equal(r.status, 400, `${body}: ${r.body}`);
    assert.match(r.json().message, /from|profile ids/, body);
  }
  r = await admin('GET', `/default/${a}/merge`);
  assert.equal(r.status, 405);
  assert.equal(r.header('allow'), 'POST');
  assert.equal((await admin('GET', `/default/${a}`)).json().identities.length, 1, 'refused merges change nothing');
  await assert.rejects(cli(['merge', 'default', a, a]), (e) => /HTTP 400: a profile cannot be merged into itself/.test(e.stderr));
});
