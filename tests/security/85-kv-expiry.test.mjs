// Class 14 — shared state that outlives its use: a sign-in paused by a
// rule's redirect and abandoned keeps the person's ID token and profile in
// KV. It must expire with its link (15 minutes) and then leave the store,
// without anyone listing the store. The host's KV is a file (state dir
// kv/default.json, a journal: tests/lib/kv.mjs), so the test reads it directly; "later" is the same state
// directory served again by a host whose components see the wall clock moved
// (EDGEAUTH_TEST_CLOCK_OFFSET_SECS, test only, see gateway/host/src/clock.rs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request } from '../lib/http.mjs';
import { startStack, stopStack, startGateway } from '../lib/stack.mjs';
import { prepareRules } from '../lib/rules.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { validSignIn, show } from './lib/sec.mjs';
import { readKv } from '../lib/kv.mjs';
import { needs } from '../lib/runtime.mjs';

let stack; let op; let t; let rules; let later;

before(async () => {
  stack = await startStack({ gateways: 2 });
  op = await startHostileIdp();
  t = op.tenant('expiry');
  rules = await prepareRules({ profile: 'progressive_profile' });
});
after(async () => { await later?.stop(); await stopStack(stack); await op?.stop(); rules?.cleanup(); });

const keysIn = (stateDir) => Object.keys(readKv(stateDir));

test('an abandoned paused sign-in is gone from KV after it expired', async (tc) => {
  if (needs(tc, 'testClock')) return;
  const vars = rules.vars([{ name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 1 } }]);
  const gw = await stack.startGateway({ issuer: t.issuer, vars });
  await rules.upload(gw);
  const jar = new CookieJar();
  const s = await validSignIn(gw, t, { jar, claims: { sub: `abandoner-${crypto.randomBytes(4).toString('hex')}` } });
  assert.equal(s.cb.status, 302, show(s.cb));
  assert.equal(new URL(s.cb.location, gw.url).pathname, '/profile-form', 'the rule paused the sign-in');
  const paused = keysIn(gw.stateDir).filter((k) => k.startsWith('rule-resume:'));
  assert.equal(paused.length, 1, `one paused sign-in in KV: ${keysIn(gw.stateDir)}`);
  // The person never comes back. 40 minutes later (the link lives 15), the
  // same store is served again.
  await gw.proc.stop();
  later = await startGateway({
    port: Number(new URL(gw.url).port), originUrl: stack.origin.url, issuer: t.issuer,
    sessionKeys: gw.sessionKeys, assertionKeys: gw.assertionKeys, stateDir: gw.stateDir, vars,
    env: { EDGEAUTH_TEST_CLOCK_OFFSET_SECS: String(40 * 60) },
  });
  // The link is refused as expired...
  const cont = new URL(s.cb.location, later.url);
  const refused = await request(`${later.url}/.edgeauth/continue?state=${encodeURIComponent(cont.searchParams.get('state'))}&company=X`, { jar });
  assert.equal(refused.status, 400, show(refused));
  assert.match(refused.body, /expired/);
  // ...and the next write (another person starting a sign-in) sweeps it out.
  const shifted = Math.floor(Date.now() / 1000) + 40 * 60;
  const other = await validSignIn(later, t, { claims: { sub: 'next-person', iat: shifted, exp: shifted + 300 } });
  assert.equal(other.cb.status, 302, show(other.cb));
  // (That sign-in is paused by the rule in turn: a new entry of its own.)
  const left = keysIn(later.stateDir);
  assert.ok(!left.includes(paused[0]), `the abandoned paused sign-in is still in KV: ${left}`);
  assert.ok(left.some((k) => k.startsWith('rule-resume:')), 'the new paused sign-in is kept');
});
