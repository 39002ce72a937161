// Class 3 — path confusion in public-path (bypass) rules, through the running
// gateway with a `routes` variable of public prefixes, an exact public path,
// an admin-only prefix and an API prefix. Thousands of generated targets
// (prefix x traversal spelling x separator x target x suffix, plus case,
// reserved-prefix and position variants) are sent without a session and with
// a non-admin session. The oracle is the contract itself: whatever reaches the
// origin without a session is on a public rule, whatever reaches it for bob
// is not under /admin/ in any letter case, the forwarded path is already
// normalized (the one the rules matched), and everything else is a login
// redirect, 401, 403, 400 or 404 — never a 5xx.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, sessionValue } from '../lib/gateway-flow.mjs';
import { Failures, pool, rssKb } from './lib/sec.mjs';
import { OriginIndex, probe, originReadings, resolvePath } from './lib/probe.mjs';

const ROUTES = [
  { path: '/public/', public: true },
  { path: '/static/*', public: true },
  { path: '/healthz', public: true },
  { path: '/admin/', allowed_groups: ['admins'] },
  { path: '/api/', api: true },
];

let stack; let gw; let idx; let bob; let alice;
const anonReached = new Map(); // target -> origin record, for the reading check
const bobReached = new Map();

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

const isPublic = (p) => p === '/public' || p.startsWith('/public/') || p === '/static' || p.startsWith('/static/') || p === '/healthz';
const isAdmin = (p) => /^\/admin(\/|$)/i.test(p);
const isReserved = (p) => /^\/\.edgeauth(\/|$)/i.test(resolvePath(decodeURIComponentSafe(p)));
function decodeURIComponentSafe(p) { try { return decodeURIComponent(p); } catch { return p; } }
/** Normalized as the gateway promises: no dot segments, no empty segments, no escapes of unreserved characters. */
const normalized = (p) => p.startsWith('/') && !/\/\.{1,2}(\/|$)|\/\/|%(2[dDeE]|3\d|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/.test(p) && !/[\\;#\s]/.test(p);

// ------------------------------------------------------------ generation
const PREFIXES = ['/public', '/static', '/public/x', '/PUBLIC'];
const DOTS = ['..', '%2e%2e', '%2E%2E', '.%2e', '%2e.', '%252e%252e', '%c0%ae%c0%ae', '%e0%80%ae%e0%80%ae', '%u002e%u002e', '%EF%BC%8E%EF%BC%8E',
  '...', '..;', '..%00', '..%09', '..%20', '%2e%2e%2f', '.\u002e'];
const SEPS = ['/', '//', '%2f', '%2F', '%5c', '%5C', '\\', '%252f', '/./', '/;/', ';/', '%3b/', '/%3B/', '%ef%bc%8f', '%EF%BC%BC', '/%09/', '/%20/'];
const TARGETS = ['admin/x', 'private', 'ADMIN/x', 'api/x', '.edgeauth/userinfo'];
const SUFFIXES = ['', '?x=1', '#frag', '%23frag', ';jsessionid=1', '/', '%00', '?/public/', '%3F/public/', '.css', '/.'];

function generate() {
  const out = new Set();
  let i = 0;
  // every prefix x traversal spelling x separator; the target and the suffix rotate
  // with co-prime strides so each pairs with every spelling somewhere in the table
  for (const p of PREFIXES) for (const d of DOTS) for (const s of SEPS) {
    const t = TARGETS[i % TARGETS.length];
    const suf = SUFFIXES[(i * 7) % SUFFIXES.length];
    i++;
    out.add(`${p}${s}${d}${s}${t}${suf}`);
  }
  for (const d of DOTS) for (const t of TARGETS) out.add(`/healthz/${d}/${t}`);
  // positions: traversal first, doubled, at the end; query/fragment tricks; case; reserved prefix
  for (const t of ['admin/x', 'private']) {
    for (const x of [`/../public/../${t}`, `/public/../../${t}`, `/public/x/../../${t}`, `/public/./../${t}`, `//public/../${t}`, `/public//../${t}`,
      `/public/%2e%2e/%2e%2e/${t}`, `/./public/../${t}`, `/public/..`, `/public/../`, `/${t}?/public/`, `/${t}#/public/`, `/${t}%3F/public/`, `/${t}%23/public/`,
      `/${t};/public/`, `/${t}/..;/public/`, `/public;/../${t}`, `/public%3B/../${t}`, `/${t}/%2e%2e/public/x`, `/${t}/../public/x`,
      `/public${'/..'.repeat(50)}/${t}`, `/public/${'a/'.repeat(500)}${'../'.repeat(501)}${t}`, `/public/.%2E/${t}`, `/public/%2E./${t}`]) out.add(x);
  }
  for (const x of ['/PUBLIC/x', '/Public/x', '/pUbLiC/x', '/public%2fx', '/publicity', '/public.json', '/publi%63/x', '/%70ublic/x', '/STATIC/x', '/static', '/healthz/',
    '/healthz/x', '/Healthz', '/healthz.json', '/healthz;x', '/healthz%2f', '/healthz?x', '/healthz#x', '/healthz/.', '/healthz/..',
    '/.edgeauth/../admin/x', '/%2eedgeauth/userinfo', '/.EDGEAUTH/userinfo', '/.EdgeAuth/x', '/%2EEDGEAUTH/x', '/.edgeauth%2fuserinfo', '/.edgeauth/%2e%2e/admin/x',
    '/public/../.edgeauth/x', '/.edgeauth', '/.edgeauth/', '/.%65dgeauth/x', '/public/%2e%2e/.edgeauth/jwks.json',
    `/${'a'.repeat(9000)}`, `/public/${'a'.repeat(9000)}`, '/public/\u00e9', '/public/%ff', '/public/%c3', '/public/%', '/public/%zz', '/public/%C3%A9',
    '*', 'http://evil.example/public/x', 'public/x', '/public/x?%2e%2e/admin', '/admin/x?public=1']) out.add(x);
  return [...out];
}

// ------------------------------------------------------------ tests
function check(f, target, who, r) {
  const label = `${who} ${JSON.stringify(target).slice(0, 140)}`;
  f.check(!(r.status >= 500), `${label}: ${r.status} ${r.body?.slice(0, 100)}`);
  if (r.reached) {
    const path = r.reached.url.split('?')[0];
    f.check(normalized(path), `${label}: origin got a path that is not normalized: ${r.reached.url}`);
    f.check(!isReserved(path), `${label}: a reserved path reached the origin: ${r.reached.url}`);
    if (who === 'anon') {
      f.check(isPublic(path), `${label}: NO SESSION but the origin got ${r.reached.url}`);
      f.check(!r.reached.headers['x-auth-request-user'] && !r.reached.headers['x-edgeauth-assertion'], `${label}: identity without session`);
    }
    if (who === 'bob') f.check(!isAdmin(path), `${label}: bob (not admin) reached ${r.reached.url}`);
    return;
  }
  f.check(!r.fromOrigin, `${label}: origin answered but left no record`);
  const loc = r.header?.('location');
  const ok = (r.status === 302 && loc && new URL(loc, gw.url).pathname === '/.edgeauth/login')
    || [400, 401, 403, 404, 405, 414, 431].includes(r.status)
    || (r.status === 200 && isReserved(target.split('?')[0]))
    || r.status === 0;
  f.check(ok, `${label}: ${r.status} ${loc || ''} ${r.body?.slice(0, 80) || ''}`);
}

test('generated path variants without a session: only public paths reach the origin, already normalized', async () => {
  const variants = generate();
  const f = new Failures('anonymous path variants');
  const rss0 = rssKb(gw.proc.pid);
  await pool(variants, 8, async (target) => {
    const r = await probe(gw.url, idx, { target });
    if (r.reached) anonReached.set(target, r.reached);
    check(f, target, 'anon', r);
  });
  f.done();
  const grown = rssKb(gw.proc.pid) - rss0;
  assert.ok(grown < 200 * 1024, `gateway memory grew by ${grown} KiB`);
  console.log(`# ${variants.length} path variants (anonymous)`);
});

test('the same variants with a non-admin session: nothing under /admin/ (any case) reaches the origin', async () => {
  const variants = generate().filter((t) => /admin/i.test(t));
  const f = new Failures('bob path variants');
  const unicode = ['/adm%C4%B1n/x', '/%EF%BD%81dmin/x', '/%EF%BC%A1%EF%BC%A4%EF%BC%AD%EF%BC%A9%EF%BC%AE/x', '/admin%E2%80%8B/x', '/x/%EF%BC%8E%EF%BC%8E/admin/x', '/x%EF%BC%8F..%EF%BC%8Fadmin/x'];
  await pool([...variants, ...unicode], 8, async (target) => {
    const r = await probe(gw.url, idx, { target, cookie: bob });
    if (r.reached) bobReached.set(target, r.reached);
    check(f, target, 'bob', r);
  });
  for (const x of ['/admin', '/admin/', '/ADMIN/', '/Admin/x', '/aDmIn/x', '/%61dmin/x', '/ad%6Din/x', '/%41DMIN/x', '/x/../admin/y', '/admin/./y', '//admin//y']) {
    const r = await probe(gw.url, idx, { target: x, cookie: bob });
    check(f, x, 'bob', r);
    f.check(r.status === 403, `bob ${x}: want 403, got ${r.status}`);
  }
  f.done();
  console.log(`# ${variants.length + 11} admin path variants (non-admin session)`);
});

test('API clients and other methods on confused paths fail closed too', async () => {
  const variants = generate().filter((_, i) => i % 11 === 0);
  const f = new Failures('method/accept variants');
  const combos = [];
  for (const t of variants) for (const [method, accept] of [['POST', 'application/json'], ['HEAD', 'text/html'], ['OPTIONS', '*/*'], ['PUT', null], ['DELETE', 'application/json']]) combos.push({ t, method, accept });
  await pool(combos, 8, async ({ t, method, accept }) => check(f, t, 'anon', await probe(gw.url, idx, { target: t, method, accept, body: method === 'POST' || method === 'PUT' ? '{}' : null })));
  f.done();
  console.log(`# ${combos.length} method/accept x path variants`);
});

test('a signed-in admin is forwarded with the normalized path, which is the one that was matched', async () => {
  const f = new Failures('admin forwarding');
  const cases = [['/public/../admin/x', '/admin/x'], ['/a//b/./c/../d', '/a/b/d'], ['/%61dmin/%78', '/admin/x'], ['/x/%2e%2e/admin/', '/admin/'], ['/public/%C3%A9', '/public/%C3%A9'],
    ['/p%20q', '/p%20q'], ['/a:b@c!$&\'()*+,=', '/a:b@c!$&\'()*+,='], ['/admin/x?a=%2e%2e/&b=/../', '/admin/x']];
  for (const [target, want] of cases) {
    const r = await probe(gw.url, idx, { target, cookie: alice });
    f.check(r.status === 200 && r.reached, `${target}: ${r.status}`);
    if (r.reached) f.check(r.reached.url.split('?')[0] === want, `${target}: origin got ${r.reached.url}, want ${want}`);
  }
  f.done();
});

test('forwarded paths mean the same to origins that decode, use \\ as /, NFKC-normalize or fold Unicode case', async () => {
  const f = new Failures('origin readings');
  assert.ok(anonReached.size > 0, 'run after the anonymous variants');
  console.log(`# ${anonReached.size} anonymous variants reached the origin`);
  for (const [target, rec] of anonReached) {
    for (const v of originReadings(rec.url)) f.check(isPublic(v), `anon ${JSON.stringify(target).slice(0, 100)}: forwarded ${rec.url}, which an origin can read as ${v}`);
  }
  for (const [target, rec] of bobReached) {
    const bad = originReadings(rec.url).flatMap((v) => [v, v.toUpperCase()]).find(isAdmin);
    f.check(!bad, `bob ${JSON.stringify(target)}: forwarded ${rec.url}, which an origin can read as ${bad}`);
  }
  f.done();
});
