// Class 6/14 — single-use values under concurrency: a callback URL (state +
// login cookie + code) and a paused sign-in's continue link, each fired twice
// at the same instant, 50 times. The provider here would redeem a code any
// number of times, so only the gateway's own marker stands between a replay
// and a second session: it must be atomic (wasi:keyvalue `increment`), not a
// read followed by a write. Every request goes over its own connection, and
// the host serves connections concurrently.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { LOGIN } from '../lib/gateway-flow.mjs';
import { prepareRules } from '../lib/rules.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { tokenAnswer, validSignIn, show } from './lib/sec.mjs';

const PAIRS = 50;
let stack; let op; let t; let gw; let gwRules; let rules;

before(async () => {
  stack = await startStack({ gateways: 3 });
  op = await startHostileIdp();
  t = op.tenant('once');
  gw = await stack.startGateway({ issuer: t.issuer });
  rules = await prepareRules({ profile: 'progressive_profile' });
  gwRules = await stack.startGateway({
    issuer: t.issuer,
    vars: rules.vars([{ name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 1 } }]),
  });
  await rules.upload(gwRules);
});
after(async () => { await stopStack(stack); await op?.stop(); rules?.cleanup(); });

const sessionSet = (r) => r.headers.some(([k, v]) => k === 'set-cookie' && /^edgeauth_session=[^;]+/.test(v));

/** Fires `target` twice at once, each over its own connection; how many sessions came back. */
async function pair(base, target, cookie) {
  const send = () => rawRequest(base, { target, headers: [['Cookie', cookie]], timeoutMs: 30000 });
  const both = await Promise.all([send(), send()]);
  return { sessions: both.filter(sessionSet).length, statuses: both.map((r) => r.status) };
}

test(`a callback fired twice at once signs in once (${PAIRS} pairs)`, async () => {
  const doubled = [];
  const none = [];
  for (let i = 0; i < PAIRS; i++) {
    const jar = new CookieJar();
    const start = await request(`${gw.url}/.edgeauth/login?rd=%2F`, { jar });
    assert.equal(start.status, 302, show(start));
    const params = new URL(start.location).searchParams;
    const code = `c-${crypto.randomBytes(9).toString('base64url')}`;
    // This provider redeems the code as often as it is asked.
    t.onCode(code, tokenAnswer(await t.sign(t.claims(params.get('nonce'), { sub: `racer-${i}` }))));
    const target = `/.edgeauth/callback?code=${code}&state=${encodeURIComponent(params.get('state'))}`;
    const r = await pair(gw.url, target, `${LOGIN}=${jar.get('127.0.0.1', LOGIN).value}`);
    if (r.sessions > 1) doubled.push(`pair ${i}: ${r.statuses}`);
    if (r.sessions === 0) none.push(`pair ${i}: ${r.statuses}`);
  }
  assert.deepEqual(doubled, [], `${doubled.length} of ${PAIRS} replayed callbacks produced two sessions`);
  assert.deepEqual(none, [], 'each pair still signs in once');
});

test(`a continue link fired twice at once resumes once (${PAIRS} pairs)`, async () => {
  const doubled = [];
  const none = [];
  for (let i = 0; i < PAIRS; i++) {
    const jar = new CookieJar();
    // A new person each time: the rule asks only while the company is unknown.
    const s = await validSignIn(gwRules, t, { jar, claims: { sub: `pauser-${crypto.randomBytes(6).toString('hex')}` } });
    assert.equal(s.cb.status, 302, show(s.cb));
    const form = new URL(s.cb.location, gwRules.url);
    assert.equal(form.pathname, '/profile-form', show(s.cb));
    const resume = jar.get('127.0.0.1', 'edgeauth_resume');
    assert.ok(resume, 'the paused sign-in set its resume cookie');
    const target = `/.edgeauth/continue?state=${encodeURIComponent(form.searchParams.get('state'))}&company=Acme`;
    const r = await pair(gwRules.url, target, `edgeauth_resume=${resume.value}`);
    if (r.sessions > 1) doubled.push(`pair ${i}: ${r.statuses}`);
    if (r.sessions === 0) none.push(`pair ${i}: ${r.statuses}`);
  }
  assert.deepEqual(doubled, [], `${doubled.length} of ${PAIRS} replayed continue links produced two sessions`);
  assert.deepEqual(none, [], 'each pair still resumes once');
});
