// Client-sent identity headers never reach the origin (with or without a
// session), in any spelling; gateway cookies never reach the origin.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, rawRequest } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, originSaw, sessionValue } from '../lib/gateway-flow.mjs';

let stack; let gw; let idp; let origin; let session;

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp, origin } = stack);
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/');
  session = sessionValue(jar);
});
after(() => stopStack(stack));

const NAMES = [
  'X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Auth-Request-Groups', 'X-Auth-Request-Preferred-Username',
  'X-Auth-Request-Access-Token', 'X-Auth-Request-Anything',
  'X-Forwarded-User', 'X-Forwarded-Email', 'X-Forwarded-Groups', 'X-Forwarded-Access-Token', 'X-Forwarded-Preferred-Username',
  'Remote-User', 'X-Edgeauth-Assertion', 'X-Edgeauth-User', 'X-Edgeauth-Anything',
];
const spellings = (name) => {
  const lower = name.toLowerCase();
  const under = name.replace(/-/g, '_');
  const mixed = [...lower].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  return [name, lower, name.toUpperCase(), mixed, under, under.toLowerCase(), under.toUpperCase()];
};

function spoofHeaders() {
  const out = [];
  let n = 0;
  for (const name of NAMES) {
    for (const s of spellings(name)) out.push([s, `SPOOF${++n}`]);
    // duplicates of the same line
    out.push([name, `SPOOF${++n}`], [name, `SPOOF${++n}`]);
  }
  // a spoofed value that looks like a real identity
  out.push(['X-Auth-Request-User', 'admin'], ['X-Auth-Request-Groups', 'admins'], ['X-Auth-Request-Email', 'root@example.com']);
  out.push(['X-Edgeauth-Assertion', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.']);
  return out;
}

const IDENTITY_RE = /^(x[-_]auth[-_]request[-_]|x[-_]forwarded[-_](user|email|groups|access[-_]token|preferred[-_]username)$|remote[-_]user$|x[-_]edgeauth[-_])/i;

function identityLines(rec) {
  const lines = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) {
    if (IDENTITY_RE.test(rec.rawHeaders[i])) lines.push([rec.rawHeaders[i], rec.rawHeaders[i + 1]]);
  }
  return lines;
}

// Hosts cap the number of header lines (hyper: 100), so send the spoofs in batches.
function batches(list, size = 40) {
  const out = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

test('with a session: only the gateway\'s own identity headers reach the origin', async () => {
  for (const batch of batches(spoofHeaders())) {
    await origin.reset();
    const headers = [...batch, ['Accept', 'text/html'], ['Cookie', `edgeauth_session=${session}`]];
    const r = await rawRequest(gw.url, { target: '/spoof?x=1', headers });
    assert.equal(r.status, 200, `status ${r.status}: ${r.body.slice(0, 300)}`);
    const [rec] = await originSaw(origin, '/spoof');
    assert.ok(rec, 'request did not reach the origin');
    const raw = JSON.stringify(rec.rawHeaders);
    assert.doesNotMatch(raw, /SPOOF|admin"|root@example\.com|eyJhbGciOiJub25lIn0/, `spoofed values reached the origin: ${raw}`);
    const lines = identityLines(rec);
    const byName = (n) => lines.filter(([k]) => k.toLowerCase() === n);
    assert.deepEqual(byName('x-auth-request-user').map(([, v]) => v), ['alice'], JSON.stringify(lines));
    assert.deepEqual(byName('x-auth-request-email').map(([, v]) => v), ['alice@example.com'], JSON.stringify(lines));
    assert.deepEqual(byName('x-auth-request-groups').map(([, v]) => v), ['admins,devs'], JSON.stringify(lines));
    assert.equal(byName('x-edgeauth-assertion').length, 1, JSON.stringify(lines));
    const profile = byName('x-auth-request-profile').map(([, v]) => v);
    assert.equal(profile.length, 1, JSON.stringify(lines));
    assert.match(profile[0], /^p_[a-z2-7]{26}$/);
    const unexpected = lines.filter(([k]) => !['x-auth-request-user', 'x-auth-request-email', 'x-auth-request-groups', 'x-auth-request-profile', 'x-edgeauth-assertion'].includes(k.toLowerCase()));
    assert.deepEqual(unexpected, [], 'identity-like headers the gateway did not set');
    for (const [k] of lines) assert.doesNotMatch(k, /_/, `underscore header reached the origin: ${k}`);
  }
});

test('each spoofed header alone, with a session, is dropped', async () => {
  for (const [k, v] of spoofHeaders()) {
    await origin.reset();
    const r = await rawRequest(gw.url, { target: '/one', headers: [[k, v], ['Accept', 'application/json'], ['Cookie', `edgeauth_session=${session}`]] });
    assert.equal(r.status, 200, `${k}: status ${r.status}`);
    const [rec] = await originSaw(origin, '/one');
    const raw = JSON.stringify(rec.rawHeaders);
    assert.ok(!raw.includes(`"${v}"`) || (k.toLowerCase() === 'x-auth-request-user' && v === 'alice'), `${k}: ${v} reached the origin: ${raw}`);
  }
});

test('without a session: spoofed identity gets no access and reaches nothing', async () => {
  await origin.reset();
  for (const batch of batches(spoofHeaders())) {
    const html = await rawRequest(gw.url, { target: '/spoof-anon', headers: [...batch, ['Accept', 'text/html']] });
    assert.equal(html.status, 302);
    const api = await rawRequest(gw.url, { target: '/spoof-anon', headers: [...batch, ['Accept', 'application/json']] });
    assert.equal(api.status, 401);
  }
  const withAuth = await rawRequest(gw.url, { target: '/spoof-anon', headers: [['Authorization', 'Bearer x'], ['Remote-User', 'alice'], ['Accept', 'application/json']] });
  assert.equal(withAuth.status, 401);
  assert.deepEqual(await originSaw(origin, '/'), []);
});

test('too many header lines are refused, not forwarded', async () => {
  await origin.reset();
  const r = await rawRequest(gw.url, { target: '/many', headers: [...spoofHeaders(), ['Cookie', `edgeauth_session=${session}`]] });
  // More lines than the host takes (hyper's limit of 100): 431, nothing forwarded.
  assert.equal(r.status, 431, `status ${r.status}`);
  assert.deepEqual(await originSaw(origin, '/many'), []);
});

test('gateway cookies are stripped in every cookie-header shape; others pass', async () => {
  const shapes = [
    [['Cookie', `edgeauth_session=${session}; app=1`]],
    [['Cookie', `app=1; edgeauth_session=${session}`]],
    [['Cookie', `app=1;edgeauth_session=${session};edgeauth_login=zzz`]],
    [['Cookie', 'app=1'], ['Cookie', `edgeauth_session=${session}`]],
    [['Cookie', `edgeauth_session=${session}`], ['cookie', 'app=1; EDGEAUTH_SESSION=upper']],
  ];
  for (const h of shapes) {
    await origin.reset();
    const r = await rawRequest(gw.url, { target: '/ck', headers: [...h, ['Accept', 'application/json']] });
    const [rec] = await originSaw(origin, '/ck');
    assert.equal(r.status, 200, `${JSON.stringify(h)}: ${r.status}`);
    const cookies = [];
    for (let i = 0; i < rec.rawHeaders.length; i += 2) if (/^cookie$/i.test(rec.rawHeaders[i])) cookies.push(rec.rawHeaders[i + 1]);
    const all = cookies.join('; ');
    assert.doesNotMatch(all, /edgeauth_(session|login)=/, `${JSON.stringify(h)} -> origin cookie: ${all}`);
    assert.ok(!all.includes(session), `session value reached the origin: ${all}`);
    assert.match(all, /(^|;\s*)app=1(;|$)/, `${JSON.stringify(h)} -> origin cookie: ${all}`);
  }
});
