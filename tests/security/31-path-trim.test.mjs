// Class 3 — path segments that origins read as another path. IIS and other
// servers on NTFS drop trailing dots and spaces from a segment (`/admin./x`,
// `/admin%20/x` serve `/admin/x`) and read `admin::$DATA` or
// `admin:$i30:$INDEX_ALLOCATION` as `admin`; Tomcat drops `;params`; servers
// trim tabs and other blanks. Each class, raw and percent-encoded, in several
// letter cases and positions, is sent for a protected prefix (`/admin/`,
// admins only), for the public prefix and for the gateway's reserved prefix,
// without a session and with bob's (not in admins). None may reach the origin
// for them: refused (400), denied (403), or sent to log in. Alice (admins)
// still reaches the normal paths, and names that merely end in a dot outside
// any rule boundary (`/wiki/Washington,_D.C.`) still reach the origin.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, sessionValue } from '../lib/gateway-flow.mjs';
import { Failures, pool } from './lib/sec.mjs';
import { OriginIndex, probe } from './lib/probe.mjs';

const ROUTES = [
  { path: '/public/', public: true },
  { path: '/admin/', allowed_groups: ['admins'] },
  { path: '/reports/q1', allowed_groups: ['admins'] },
];

let stack; let gw; let idx; let bob; let alice;

before(async () => {
  stack = await startStack({ gatewayOptions: { vars: { routes: JSON.stringify(ROUTES) } } });
  gw = stack.gateway;
  idx = new OriginIndex(stack.origin);
  for (const u of ['alice', 'bob']) {
    const jar = new CookieJar();
    await loginOk(gw, stack.idp, jar, '/', { username: u });
    if (u === 'bob') bob = sessionValue(jar); else alice = sessionValue(jar);
  }
});
after(() => stopStack(stack));

/** What some server trims from (or cuts off) the end of a segment. */
const TAILS = {
  'trailing dot': ['.', '..', '...', '%2e', '%2E', '.%2e', '%2e%2e%2e'],
  'trailing space': ['%20', '%20%20', '%20%2e%20'],
  'dots and spaces': ['.%20', '%20.', '%2e%20', '%20%2e', '.%20.', '%20.%20'],
  'tab and other blanks': ['%09', '%0b', '%0c', '%0d', '%0a', '%00', '%a0', '%c2%a0', '%C2%85', '%e1%9a%80', '%e3%80%80', '%e2%80%8b'],
  'NTFS stream': ['::$DATA', '::$data', ':$DATA', '::$INDEX_ALLOCATION', ':$i30:$INDEX_ALLOCATION', '%3a%3a$DATA', '::%24DATA', '%3A%3A%24%44ATA', '::$DATA.'],
  'path parameter': [';', ';x', ';jsessionid=1', '%3b', '%3Bx', ';.', '.;'],
};

/** Where the tail goes: the protected prefix in several cases, an exact rule, the public and reserved prefixes. */
function variants() {
  const out = [];
  for (const [cls, tails] of Object.entries(TAILS)) {
    for (const tail of tails) {
      for (const seg of ['admin', 'ADMIN', 'Admin', 'adm%69n']) {
        out.push({ cls, target: `/${seg}${tail}/x`, protects: 'admin' });
        out.push({ cls, target: `/${seg}${tail}`, protects: 'admin' });
      }
      out.push({ cls, target: `/x/../admin${tail}/x`, protects: 'admin' });
      out.push({ cls, target: `/admin${tail}/users${tail}/1`, protects: 'admin' });
      out.push({ cls, target: `/reports/q1${tail}`, protects: 'admin' });
      out.push({ cls, target: `/reports${tail}/q1`, protects: 'admin' });
      out.push({ cls, target: `/public${tail}/../admin/x`, protects: 'admin' });
      out.push({ cls, target: `/public${tail}/x`, protects: 'public' });
      out.push({ cls, target: `/.edgeauth${tail}/userinfo`, protects: 'reserved' });
    }
  }
  return out;
}

/** The outcomes that keep a person out: 400, 403, or a redirect to sign in. */
function keptOut(r) {
  if ([400, 401, 403].includes(r.status)) return true;
  const loc = r.header?.('location');
  return r.status === 302 && Boolean(loc) && new URL(loc, gw.url).pathname === '/.edgeauth/login';
}

test('trimmed-segment variants of a protected path never reach the origin for anonymous people or bob', async () => {
  const list = variants();
  const f = new Failures('trimmed-segment variants');
  const statuses = new Map();
  await pool(list, 8, async (v) => {
    for (const [who, cookie] of [['anon', null], ['bob', bob]]) {
      // `/public./x` is not the public path: without a session it must not
      // pass; bob may reach it (he may reach any non-admin path).
      if (v.protects === 'public' && who === 'bob') continue;
      const r = await probe(gw.url, idx, { target: v.target, cookie });
      const key = `${v.cls} ${who} ${r.status}`;
      statuses.set(key, (statuses.get(key) || 0) + 1);
      f.check(r.status < 500 && r.status !== 0, `${who} ${v.cls} ${JSON.stringify(v.target)}: ${r.status} ${r.error || ''}`);
      f.check(!r.reached, `${who} ${v.cls} ${JSON.stringify(v.target)}: REACHED THE ORIGIN as ${r.reached?.url} (status ${r.status})`);
      f.check(r.reached || keptOut(r), `${who} ${v.cls} ${JSON.stringify(v.target)}: ${r.status}, want 400/403/login`);
    }
  });
  f.done(60);
  console.log(`# ${list.length} variants x 2 people: ${[...statuses].map(([k, c]) => `${k}: ${c}`).join('; ')}`);
});

test('each class is refused with 400 and a reason, for alice too (they are ambiguous, not forbidden)', async () => {
  const f = new Failures('refusals');
  for (const target of ['/admin./x', '/admin%20/x', '/admin%2e%20/x', '/admin%09/x', '/admin::$DATA/x', '/admin:$i30:$INDEX_ALLOCATION/x', '/admin;x/y', '/reports/q1.', '/.edgeauth./userinfo']) {
    const r = await probe(gw.url, idx, { target, cookie: alice, accept: 'application/json' });
    f.check(r.status === 400 && !r.reached, `alice ${target}: ${r.status}${r.reached ? ' reached the origin' : ''}`);
    let body = {};
    try { body = JSON.parse(r.body); } catch { /* checked below */ }
    f.check(typeof body.message === 'string' && /path/i.test(body.message), `alice ${target}: no reason given: ${r.body?.slice(0, 200)}`);
  }
  f.done();
});

test('admins reach the normal paths; names ending in a dot reach the origin where no rule boundary is near', async () => {
  const f = new Failures('allowed');
  for (const [who, cookie, target] of [['alice', alice, '/admin/x'], ['alice', alice, '/ADMIN/x'], ['alice', alice, '/reports/q1'], ['bob', bob, '/wiki/Washington,_D.C.'],
    ['bob', bob, '/files/v1.2./notes'], ['bob', bob, '/admins./x'], ['alice', alice, '/admin/notes.'], ['anon', null, '/public/a.']]) {
    const r = await probe(gw.url, idx, { target, cookie });
    f.check(r.status === 200 && r.reached && r.reached.url === target, `${who} ${target}: ${r.status}, origin saw ${r.reached?.url}`);
  }
  f.done();
});
