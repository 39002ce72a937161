// Class 8 — caches keyed too loosely, through the running gateway. Two
// tenants (issuers on the same host and port, differing only in path, with
// keys under the same kid names) must never accept each other's tokens; a
// gateway switched to another issuer on the same key-value store must not
// reuse the old issuer's cached discovery or JWKS; the cached JWKS is
// refetched for a rotated key but unknown kids cannot turn the gateway into a
// request amplifier against the IdP; discovery is not refetched per login.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { request } from '../lib/http.mjs';
import { startStack, stopStack, startGateway } from '../lib/stack.mjs';
import { startHostileIdp, generateKeys } from './lib/hostile-idp.mjs';
import { Failures, pool, hostileSignIn, tokenAnswer, issuesSession, validSignIn, show } from './lib/sec.mjs';
import { readKv, writeKv, kvFile } from '../lib/kv.mjs';

let stack; let op; let A; let B; let gA; let gB; const extra = [];

before(async () => {
  stack = await startStack();
  op = await startHostileIdp();
  A = op.tenant('a');
  B = op.tenant('b');
  [gA, gB] = await Promise.all([A, B].map((t) => startGateway({ originUrl: stack.origin.url, issuer: t.issuer })));
  extra.push(gA, gB);
});
after(async () => { await Promise.all(extra.map((g) => g.stop())); await stopStack(stack); await op?.stop(); });

const signWith = (tenant, keyOwner, over = {}, kid = 'rsa-1') => async ({ nonce }) => tokenAnswer(await tenant.sign(tenant.claims(nonce, over), { kid, key: keyOwner.keys[kid] }));

test('two tenants on one host never accept each other\'s tokens', async () => {
  for (const [g, t] of [[gA, A], [gB, B]]) {
    const ok = await hostileSignIn(g, t, signWith(t, t));
    assert.equal(ok.cb.status, 302, `control ${t.name}: ${show(ok.cb)}`);
  }
  const f = new Failures('cross-tenant tokens');
  const cases = [];
  for (const kid of ['rsa-1', 'ec-1', 'ed-1']) {
    for (const [g, self, other] of [[gA, A, B], [gB, B, A]]) {
      cases.push([`${self.name}: iss ${self.name}, signed with ${other.name}'s ${kid}`, g, self, signWith(self, other, {}, kid)]);
      cases.push([`${self.name}: iss ${other.name}, signed with ${other.name}'s ${kid}`, g, self, signWith(other, other, {}, kid)]);
      cases.push([`${self.name}: iss ${other.name}, aud ok, signed with ${self.name}'s ${kid}`, g, self, signWith(self, self, { iss: other.issuer }, kid)]);
    }
  }
  await pool(cases, 6, async ([label, g, t, spec]) => {
    const r = await hostileSignIn(g, t, spec);
    f.check(r.cb.status === 502 && !issuesSession(r.cb), `${label}: ${r.cb.status}`);
  });
  f.done();
});

test('an issuer switch on the same key-value store does not reuse the old issuer\'s discovery or JWKS', async () => {
  const C = op.tenant('c');
  const D = op.tenant('d');
  // the same kid names, different keys; D also moves its authorization endpoint
  D.keys = generateKeys();
  D.discoveryExtra = { authorization_endpoint: `${D.issuer}/auth` };
  const gC = await startGateway({ originUrl: stack.origin.url, issuer: C.issuer });
  extra.push(gC);
  const first = await validSignIn(gC, C);
  assert.equal(first.cb.status, 302, 'C signs in (and fills the caches)');
  const copy = (from) => {
    const to = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-copy-'));
    fs.cpSync(from, to, { recursive: true });
    return to;
  };
  // same issuer on a copy of the store: the cache is used (no new discovery fetch) — the store really carries it
  const before = C.countOf('discovery');
  const stateC = copy(gC.stateDir);
  const gC2 = await startGateway({ originUrl: stack.origin.url, issuer: C.issuer, stateDir: stateC });
  extra.push(gC2);
  assert.equal(gC2.stateDir, stateC, 'stack.startGateway must honour stateDir');
  assert.equal((await validSignIn(gC2, C)).cb.status, 302);
  assert.equal(C.countOf('discovery'), before, 'a restart on the same store reuses the cached discovery');
  // another issuer on a copy of C's store
  const gD = await startGateway({ originUrl: stack.origin.url, issuer: D.issuer, stateDir: copy(gC.stateDir) });
  extra.push(gD);
  const f = new Failures('issuer switch');
  const login = await request(`${gD.url}/.edgeauth/login?rd=%2F`);
  f.check(login.status === 302 && login.location.startsWith(`${D.issuer}/auth`), `login goes to ${login.location}`);
  f.check(D.countOf('discovery') === 1, `D's discovery fetched ${D.countOf('discovery')} times`);
  for (const kid of ['rsa-1', 'ec-1', 'ed-1']) {
    const r = await hostileSignIn(gD, D, signWith(D, C, {}, kid));
    f.check(r.cb.status === 502 && !issuesSession(r.cb), `iss D signed with C's cached ${kid}: ${r.cb.status}`);
  }
  const ok = await hostileSignIn(gD, D, signWith(D, D));
  f.check(ok.cb.status === 302, `D's own token: ${ok.cb.status}`);
  f.done();
});

test('issuer spellings are distinct: trailing slash, letter case, another path', async () => {
  const f = new Failures('issuer spellings');
  for (const issuer of [`${A.issuer}/`, A.issuer.replace('http://', 'HTTP://'), `${A.issuer}/x`, A.issuer.replace('/t/a', '/t/A'), `${A.issuer}?`]) {
    const g = await startGateway({ originUrl: stack.origin.url, issuer }).catch(() => null);
    if (!g) continue; // refused by configuration: fine
    extra.push(g);
    const r = await request(`${g.url}/.edgeauth/login?rd=%2F`);
    f.check(r.status >= 500 || r.status === 302, `${issuer}: ${r.status}`);
    if (r.status === 302) f.check(!r.location.startsWith(`${A.issuer}/auth`), `${issuer}: used tenant a's endpoints (${r.location})`);
  }
  f.done();
});

/** A copy of a gateway's store whose cached JWKS looks `secs` older (time travel for the refetch interval). */
function agedCopy(stateDir, secs) {
  const to = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-aged-'));
  fs.cpSync(stateDir, to, { recursive: true });
  const file = kvFile(to);
  const kv = readKv(to);
  let n = 0;
  for (const [k, v] of Object.entries(kv)) {
    if (!k.startsWith('provider:')) continue;
    // The value is `<expires_at> <json>` (gateway/core/src/kv_schema.rs).
    const raw = Buffer.from(v, 'base64').toString('utf8');
    const sp = raw.indexOf(' ');
    const c = JSON.parse(raw.slice(sp + 1));
    c.jwks_fetched_at -= secs;
    kv[k] = Buffer.from(`${raw.slice(0, sp)} ${JSON.stringify(c)}`).toString('base64');
    n++;
  }
  assert.equal(n, 1, `one provider cache entry in ${file}`);
  writeKv(to, kv);
  return to;
}

test('JWKS: unknown kids cannot amplify requests to the IdP; a rotated key is fetched once the interval allows', async () => {
  const R = op.tenant('rot');
  const g = await startGateway({ originUrl: stack.origin.url, issuer: R.issuer });
  extra.push(g);
  assert.equal((await validSignIn(g, R)).cb.status, 302);
  assert.equal(R.countOf('jwks'), 1);
  // 30 forged tokens with unknown kids, partly concurrent, right after the fetch: no further JWKS request
  const attacker = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const forged = (gw) => pool(Array.from({ length: 30 }, (_, i) => i), 6, (i) => hostileSignIn(gw, R, async ({ nonce }) => tokenAnswer(await R.sign(R.claims(nonce), { kid: `unknown-${i}`, key: { alg: 'RS256', privateKey: attacker.privateKey } }))));
  let rs = await forged(g);
  assert.ok(rs.every((r) => r.cb.status === 502 && !issuesSession(r.cb)), rs.map((r) => r.cb.status).join(','));
  assert.equal(R.countOf('jwks'), 1, `JWKS fetched ${R.countOf('jwks') - 1} more times for unknown kids`);
  // the IdP rotates; two minutes later (aged cache) the new kid triggers one refetch and works
  R.keys['rsa-2'] = { alg: 'RS256', ...crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }) };
  const g2 = await startGateway({ originUrl: stack.origin.url, issuer: R.issuer, stateDir: agedCopy(g.stateDir, 120) });
  extra.push(g2);
  const r2 = await hostileSignIn(g2, R, async ({ nonce }) => tokenAnswer(await R.sign(R.claims(nonce), { kid: 'rsa-2' })));
  assert.equal(r2.cb.status, 302, `the rotated key is picked up: ${show(r2.cb)}`);
  assert.equal(R.countOf('jwks'), 2);
  rs = await forged(g2);
  assert.ok(rs.every((r) => r.cb.status === 502 && !issuesSession(r.cb)));
  assert.equal(R.countOf('jwks'), 2, `JWKS fetched ${R.countOf('jwks') - 2} more times for unknown kids after the rotation`);
  assert.equal(R.countOf('discovery'), 1, `discovery fetched ${R.countOf('discovery')} times for ${R.countOf('token')} sign-ins`);
});
