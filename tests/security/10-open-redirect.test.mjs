// Class 1 — open redirects, through the running gateway, for each place a
// redirect target enters separately:
//   A. the login return URL (`/.edgeauth/login?rd=`), observed where it is
//      used: the Location of the callback after a real sign-in at the dev IdP;
//   B. the return URL built from a hostile request target (no session);
//   C. the logout return URL (`/.edgeauth/logout?rd=`), observed at the
//      logged-out endpoint it is sealed for, and on the signed-out page of a
//      provider without end_session_endpoint;
//   D. the post-logout target itself (`/.edgeauth/logged-out?state=`): forged,
//      foreign, tampered and re-purposed states, plus hostile extra parameters.
// Every variant must stay on the gateway: Location (as a browser resolves it)
// same-origin, a plain path that no further decoding turns into another host,
// and every link on a page the gateway writes the same.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { startStack, stopStack, sessionKey } from '../lib/stack.mjs';
import { SESSION, LOGIN, loginOk, startLogin } from '../lib/gateway-flow.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import {
  Failures, pool, validSignIn, locationProblem, hrefProblems, pctAll, pctSome, secretsOf, leaks, processLog, show,
} from './lib/sec.mjs';

let stack; let gw; let idp; let op; let noEnd; let good; let gwS; let gwB;
const idpJar = new CookieJar(); // one IdP session (SSO) for the whole file

before(async () => {
  stack = await startStack({ gateways: 4 });
  ({ gateway: gw, idp } = stack);
  op = await startHostileIdp();
  noEnd = op.tenant('noend');
  noEnd.discoveryExtra = { end_session_endpoint: undefined };
  good = op.tenant('good');
  gwS = await stack.startGateway({ issuer: good.issuer });
  await loginOk(gw, idp, idpJar, '/warmup');
});
after(async () => { await stopStack(stack); await op?.stop(); });

// ------------------------------------------------------------ variants
function mixCase(s) { return [...s].map((c, i) => (i % 2 ? c.toUpperCase() : c.toLowerCase())).join(''); }

/** Hostile targets as the gateway sees them after the query is decoded once. */
function hostileBases(gwUrl) {
  const { host: me, port } = new URL(gwUrl);
  const E = 'evil.example';
  const out = new Set();
  const prefixes = ['//', '///', '////', '/\\', '\\\\', '\\/', '/\\/', '/\t/', '/\n/', '/\r/', '/\x0b/', '/\x0c/', '/\x00/',
    ' //', '\t//', '\x01//', '/./\\', '/../\\', '/.//', '/..//', '/a/../..//', '/%2F/', '/%5C',
    'https://', 'http://', 'HTTPS://', 'hTtPs://', 'https:', 'https:/', 'https:\\\\', 'https:/\\', 'ftp://', 'ws://', '//\\', '/\\\\'];
  for (const p of prefixes) {
    out.add(`${p}${E}`);
    out.add(`${p}${me}@${E}`);
  }
  for (const H of [`${E}:443`, `${me}.${E}`, `${E}%2F@${me}`, `evil${me}`, `${E}\\@${me}`, `${E}/path?q=1#f`]) {
    for (const p of ['//', '/\\', 'https://', '/\t/']) out.add(`${p}${H}`);
  }
  for (const x of [
    'javascript:alert(1)', 'JaVaScRiPt:alert(1)', 'java\tscript:alert(1)', 'java\nscript:alert(1)', ' javascript:alert(1)',
    '\x01javascript:alert(1)', 'javascript://%0aalert(1)', 'javascript:%2F%2F%0aalert(1)', 'data:text/html,<script>alert(1)</script>',
    'data:;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==', 'DATA:text/html,x', 'vbscript:msgbox(1)', `blob:https://${E}/x`, 'file:///etc/passwd',
    // Unicode look-alikes of / \ . and full-width hosts
    `/\uff0f${E}`, `\uff0f\uff0f${E}`, `/\u2044${E}`, `/\u2215${E}`, `\u2215\u2215${E}`, `/\uff3c${E}`, `/\u29f5${E}`, `/\ufe68${E}`,
    `//evil\u3002example`, `//evil\uff0eexample`, `//\uff45\uff56\uff49\uff4c.example`, `/\u200b/${E}`, `/\u2028/${E}`, `/\u00a0/${E}`, `/\u3000/${E}`,
    // userinfo and host confusion against the gateway's own origin
    `http://${me}:${port}@${E}/`, `//${me}:${port}@${E}`, `http://${me}:${port}%40${E}/`, `http://${E}\\@${me}:${port}/`,
    `http://${E}#@${me}:${port}/`, `http://${E}?@${me}:${port}/`, `http://${me}:${port}.${E}/`, `http://${me}.${E}:${port}/`,
    `http://evil${me}:${port}/`, `http://${me}:${port}${E}/`, `http://${me}:1/`, `http://${me}:80/`, `http://${me}/`, `http://localhost:${port}/`,
    `http://[::1]:${port}/`, `http://2130706433:${port}/`, `http://0x7f.1:${port}/`, `https://${me}:${port}/`, `http://${me}:${port}/absolute`,
    // not a path at all
    E, `${E}/path`, `.${E}`, `@${E}`, `:${E}`, '?next=//evil.example', '#//evil.example', './x', '../x', '.', '..', '', ' ', '\t', '%', '%%2F%2Fevil',
    `/${'a'.repeat(3000)}`,
  ]) out.add(x);
  return [...out];
}

/** Each base in several encodings, as the value of the decoded `rd` parameter (`all`: every one). */
function encodings(t, all = false) {
  const special = '/\\:\t\n\r\x0b\x0c\x00 @.';
  const once = pctSome(t, special);
  const v = [t, once, once.replace(/%/g, '%25')];
  if (all) {
    v.push(pctSome(t, special, true), pctAll(t), once.replace(/%/g, '%2525'), t[0] ? t[0] + pctSome(t.slice(1), special) : t, mixCase(t), t.replace(/\//g, '%u002f'));
  }
  return [...new Set(v)];
}

/** The generated table: every base in three encodings (`wide`: the short ones in all nine). */
const generate = (gwUrl, wide) => [...new Set(hostileBases(gwUrl).flatMap((t) => encodings(t, wide && t.length < 24 && /evil\.example$/.test(t))))];

/** Paths that must be kept (exactly, as a browser would send them). */
const ALLOWED = ['/', '/x', '/deep/path/page.html', '/p?x=1&y=two%20words', '/p?next=https://evil.example', '/%C3%BC?e=%C3%A9', '/a:b@c', '/search?q=%2F%2Fevil'];

// ------------------------------------------------------------ helpers
/** Sign in again (IdP SSO) with login return URL `rd`; the callback's response. */
async function loginReturn(rd) {
  const jar = idpJar.clone();
  jar.delete('127.0.0.1', SESSION);
  const start = await request(`${gw.url}/.edgeauth/login?rd=${encodeURIComponent(rd)}`, { jar });
  if (start.status !== 302 || !start.location.startsWith(idp.issuer)) return { start };
  const w = await walkIdp(jar, start.location, {});
  if (!w.location) return { start, walk: w };
  const cb = await request(w.location, { jar });
  return { start, cb };
}

const offsiteAbsolute = (t) => /^\s*[a-z][a-z0-9+.\-\t\n]*:/i.test(t) && !t.startsWith('/');

// ------------------------------------------------------------ A. login rd
function checkLoginReturn(f, rd, { start, cb }, issuer) {
  const label = `rd=${JSON.stringify(rd).slice(0, 120)}`;
  f.check(start.status === 302 && start.location.startsWith(`${issuer}/`), `${label}: login start ${start.status} ${start.rawLocation}`);
  if (!cb) return f.check(false, `${label}: sign-in did not come back`);
  f.check(cb.status === 302, `${label}: callback ${cb.status}`);
  const p = locationProblem(cb.rawLocation, new URL(cb.url).origin);
  f.check(!p, `${label}: ${p}`);
  // absolute/scheme/host forms are not a path on the gateway: replaced by "/"
  if (offsiteAbsolute(rd) || /^[/\\\s]{2}|^[^/]/.test(rd)) f.check(cb.rawLocation === '/', `${label}: expected "/", got ${JSON.stringify(cb.rawLocation)}`);
}

test('A. login return URL, real IdP: every hostile base target comes back to the gateway', async () => {
  const variants = hostileBases(gw.url).filter((_, i) => i % 2 === 0);
  const f = new Failures('login return URLs (real IdP)');
  await pool(variants, 6, async (rd) => checkLoginReturn(f, rd, await loginReturn(rd), idp.issuer));
  f.done();
  console.log(`# A: ${variants.length} login return URL bases through the dev IdP`);
});

test('A. login return URL, full table (bases x encodings x case): every variant comes back to the gateway', async () => {
  const variants = generate(gwS.url, false);
  const f = new Failures('login return URLs');
  await pool(variants, 8, async (rd) => checkLoginReturn(f, rd, await validSignIn(gwS, good, { rd }), good.issuer));
  f.done();
  console.log(`# A: ${variants.length} login return URL variants through a scripted provider`);
});

test('A. same-origin relative return URLs are kept exactly', async () => {
  for (const rd of ALLOWED) {
    const { cb } = await loginReturn(rd);
    assert.equal(new URL(cb.rawLocation, gw.url).href, new URL(rd, gw.url).href, `rd=${rd}: ${show(cb)}`);
  }
});

test('A. the rd parameter in odd query shapes (duplicates, raw, encoded key) never escapes', async () => {
  const f = new Failures('query shapes');
  const shapes = [
    'rd=/ok&rd=//evil.example', 'rd=//evil.example&rd=/ok', 'rd=//evil.example', 'rd=/\\evil.example', 'RD=//evil.example',
    '%72d=//evil.example', 'rd%3D//evil.example', 'rd=%2F%2Fevil.example', 'rd=%252F%252Fevil.example', 'rd=/%09/evil.example',
    'rd=https:%2F%2Fevil.example', 'rd=%68ttps://evil.example', 'rd=/ok%23@evil.example', 'rd=/ok;//evil.example',
    'rd=//evil.example%00', 'rd=%E3%80%82evil', 'rd=%EF%BC%8F%EF%BC%8Fevil.example', 'rd=+//evil.example', 'rd==//evil.example',
    'rd[]=//evil.example', 'x=1&rd=//evil.example&rd=/', `rd=${'/a'.repeat(1500)}`,
  ];
  await pool(shapes, 6, async (query) => {
    const q = query.slice(0, 160);
    const start = await rawRequest(gw.url, { target: `/.edgeauth/login?${query}` });
    if (start.status !== 302) return f.check(start.status >= 400 && start.status < 500, `${q}: login start ${start.status}`);
    const loc = start.header('location');
    f.check(loc.startsWith(`${idp.issuer}/`), `${q}: login start went to ${loc}`);
    const jar = idpJar.clone();
    jar.delete('127.0.0.1', SESSION);
    for (const [k, v] of start.headers) {
      if (k !== 'set-cookie') continue;
      const pair = v.split(';')[0];
      const i = pair.indexOf('=');
      jar.set('127.0.0.1', pair.slice(0, i), pair.slice(i + 1), '/.edgeauth/');
    }
    const w = await walkIdp(jar, loc, {});
    const cb = await request(w.location, { jar });
    const p = locationProblem(cb.rawLocation, gw.url);
    f.check(cb.status === 302 && !p, `${q}: ${p || cb.status}`);
    if (!q.includes('rd=/ok') && !q.startsWith('%72d') && !q.startsWith('RD') && !q.startsWith('rd%3D') && !q.startsWith('rd[]') && !q.startsWith('rd==') && !q.startsWith('rd=/a/a')) {
      f.check(cb.rawLocation === '/', `${q}: expected "/", got ${cb.rawLocation}`);
    }
  });
  f.done();
});

// ------------------------------------------------------------ B. request targets
test('B. hostile request targets: the login redirect and the sign-in after it stay on the gateway', async () => {
  const targets = [];
  for (const h of ['evil.example', 'evil.example/x?y=1', '127.0.0.1.evil.example']) {
    for (const p of ['//', '///', '/\\', '/%2F/', '/%5C', '/.//', '/%09/', '/./\\', '/..//', '/%2e%2e//', '/%252F%252F']) targets.push(`${p}${h}`);
  }
  targets.push('/x?rd=https://evil.example', '/x?rd=//evil.example&next=//evil.example', '/%2F%2Fevil.example?x=//evil', '/x#//evil.example');
  const f = new Failures('request targets');
  await pool(targets, 6, async (target) => {
    for (const [method, accept] of [['GET', 'text/html'], ['HEAD', 'text/html'], ['GET', '*/*']]) {
      const r = await rawRequest(gw.url, { method, target, headers: [['Accept', accept]] });
      const label = `${method} ${target}`;
      if (r.status !== 302) { f.check(r.status >= 400 && r.status < 500, `${label}: ${r.status}`); continue; }
      const loc = r.header('location');
      const u = new URL(loc, gw.url);
      f.check(u.origin === gw.url && u.pathname === '/.edgeauth/login', `${label}: login redirect ${loc}`);
      if (method !== 'GET' || accept !== 'text/html') continue;
      const { cb } = await loginReturn(u.searchParams.get('rd') ?? '/');
      const p = locationProblem(cb?.rawLocation, gw.url);
      f.check(cb && !p, `${label}: after sign-in ${p}`);
    }
  });
  f.done();
});

test('B. X-Forwarded-*/X-Original-URL/Host headers do not steer any redirect', async () => {
  const hdrs = [['X-Forwarded-Host', 'evil.example'], ['X-Forwarded-Proto', 'https'], ['X-Forwarded-Port', '443'], ['X-Original-URL', '//evil.example/'],
    ['X-Rewrite-URL', '//evil.example/'], ['X-Forwarded-Uri', '//evil.example/'], ['Forwarded', 'host=evil.example;proto=https'], ['X-Forwarded-Prefix', '//evil.example']];
  for (const [target, expectLoc] of [['/fwd?a=1', '/.edgeauth/login'], ['/.edgeauth/login?rd=%2F', `${idp.issuer}/`], ['/.edgeauth/logout?rd=%2F', `${idp.issuer}/`]]) {
    const r = await rawRequest(gw.url, { target, headers: [...hdrs, ['Accept', 'text/html']] });
    assert.equal(r.status, 302, `${target}: ${r.status}`);
    const loc = r.header('location');
    assert.ok(loc.startsWith(expectLoc), `${target}: ${loc}`);
    assert.doesNotMatch(loc, /evil\.example/, `${target}: ${loc}`);
    const rdi = new URL(loc, gw.url).searchParams;
    for (const k of ['redirect_uri', 'post_logout_redirect_uri']) if (rdi.has(k)) assert.ok(rdi.get(k).startsWith(`${gw.url}/.edgeauth/`), `${k}=${rdi.get(k)}`);
  }
  // Host header of another site: the gateway answers for its public_url only
  const r = await rawRequest(gw.url, { target: '/.edgeauth/login?rd=%2F', headers: [['Host', 'evil.example']] }).catch(() => null);
  if (r && r.status === 302) assert.doesNotMatch(new URL(r.header('location')).searchParams.get('redirect_uri') || '', /evil/);
});

// ------------------------------------------------------------ C. logout rd
/** Logout with `rd`, then the logged-out endpoint with the state the IdP would hand back. */
async function logoutReturn(g, rd, jar = new CookieJar()) {
  const out = await request(`${g.url}/.edgeauth/logout?rd=${encodeURIComponent(rd)}`, { jar });
  if (out.status !== 302) return { out };
  const u = new URL(out.location);
  const state = u.searchParams.get('state');
  const back = await request(`${g.url}/.edgeauth/logged-out?state=${encodeURIComponent(state ?? '')}`, { jar });
  return { out, u, state, back };
}

test('C. logout return URL: every hostile variant ends on the gateway', async () => {
  const variants = generate(gw.url, true);
  const f = new Failures('logout return URLs');
  await pool(variants, 8, async (rd) => {
    const label = `logout rd=${JSON.stringify(rd).slice(0, 120)}`;
    const { out, u, back } = await logoutReturn(gw, rd);
    f.check(out.status === 302 && `${u?.origin}${u?.pathname}` === `${idp.issuer}/session/end`, `${label}: logout ${out.status} ${out.rawLocation}`);
    if (!back) return;
    f.check(u.searchParams.get('post_logout_redirect_uri') === `${gw.url}/.edgeauth/logged-out`, `${label}: post_logout_redirect_uri ${u.searchParams.get('post_logout_redirect_uri')}`);
    // The return URL travels only sealed, in `state` (random base64url, which
    // may spell "evil" by chance: 1 run in ~80 did): nowhere else, not in clear.
    const state = u.searchParams.get('state') ?? '';
    const rest = new URL(u.href);
    rest.searchParams.delete('state');
    f.check(!rest.href.includes('evil'), `${label}: hostile value carried in clear to the IdP: ${u.href.slice(0, 200)}`);
    f.check(/^[\w-]+\.[\w-]+$/.test(state), `${label}: state is not a sealed value: ${state.slice(0, 120)}`);
    f.check(back.status === 302 || back.status === 200, `${label}: logged-out ${back.status}`);
    const p = locationProblem(back.rawLocation, gw.url);
    f.check(!p, `${label}: ${p}`);
    if (back.status === 302 && (offsiteAbsolute(rd) || /^[/\\\s]{2}|^[^/]/.test(rd))) f.check(back.rawLocation === '/', `${label}: expected "/" or the page, got ${back.rawLocation}`);
    for (const h of hrefProblems(back.body, gw.url)) f.check(false, `${label}: ${h}`);
  });
  f.done();
  console.log(`# C: ${variants.length} logout return URL variants`);
});

test('C. logout through the real IdP (signed in, confirm page) returns only to safe paths', async () => {
  for (const rd of ['https://evil.example/', '//evil.example', '/\\evil.example', '/%2F%2Fevil.example', 'javascript:alert(1)', '/ok?x=1']) {
    const jar = idpJar.clone();
    jar.delete('127.0.0.1', SESSION);
    await loginOk(gw, idp, jar, '/before-logout');
    const out = await request(`${gw.url}/.edgeauth/logout?rd=${encodeURIComponent(rd)}`, { jar });
    assert.equal(new URL(out.location).origin, idp.issuer, show(out));
    const w = await walkIdp(jar, out.location, { logout: true });
    assert.ok(w.location, w.hops.join('\n'));
    assert.equal(new URL(w.location).origin, gw.url, `IdP sent the browser to ${w.location}`);
    const done = await request(w.location, { jar });
    const p = locationProblem(done.rawLocation, gw.url);
    assert.ok(!p, `rd=${rd}: ${p}`);
    if (rd === '/ok?x=1') assert.equal(done.rawLocation, '/ok?x=1');
    else if (done.status === 302) assert.equal(done.rawLocation, '/', `rd=${rd}`);
    for (const h of hrefProblems(done.body, gw.url)) assert.fail(`rd=${rd}: ${h}`);
    idpJar.delete('127.0.0.1', SESSION);
    await loginOk(gw, idp, idpJar, '/again'); // the IdP session ended: sign in again for later cases
  }
});

test('C. provider without end_session_endpoint: the signed-out page links only to the gateway', async () => {
  const g = await stack.startGateway({ issuer: noEnd.issuer });
  const f = new Failures('signed-out page links');
  const variants = hostileBases(g.url);
  await pool(variants, 8, async (rd) => {
    const r = await request(`${g.url}/.edgeauth/logout?rd=${encodeURIComponent(rd)}`);
    const label = `rd=${JSON.stringify(rd).slice(0, 100)}`;
    f.check(r.status === 200 || r.status === 302, `${label}: ${r.status}`);
    f.check(!locationProblem(r.rawLocation, g.url), `${label}: ${locationProblem(r.rawLocation, g.url)}`);
    for (const h of hrefProblems(r.body, g.url)) f.check(false, `${label}: ${h}`);
    // the page's sign-in link carries rd to /.edgeauth/login again: that must be a plain path too
    for (const m of r.body.matchAll(/href="([^"]*)"/g)) {
      const href = new URL(m[1].replace(/&amp;/g, '&'), g.url);
      const inner = href.searchParams.get('rd');
      if (inner !== null) f.check(!locationProblem(inner, g.url), `${label}: page link rd ${JSON.stringify(inner)}`);
    }
  });
  f.done();
});

// ------------------------------------------------------------ D. post-logout target
test('D. post-logout target: forged, foreign, re-purposed and tampered states never redirect off-site', async () => {
  // a genuine sealed logout state for rd=/bye, and values sealed for other purposes
  const { state: good } = await logoutReturn(gw, '/bye');
  assert.ok(good && good.length > 20, 'no logout state');
  const loginJar = new CookieJar();
  await startLogin(gw, loginJar, `${gw.url}/.edgeauth/login?rd=%2F%2Fevil.example`, idp.issuer);
  const loginValue = loginJar.get('127.0.0.1', LOGIN)?.value;
  const sessionJar = idpJar.clone();
  sessionJar.delete('127.0.0.1', SESSION);
  await loginOk(gw, idp, sessionJar, '/s', { rd: '//evil.example' });
  const sessionValue = sessionJar.get('127.0.0.1', SESSION)?.value;
  // a gateway with a key of the same id but another secret: its states are foreign here
  const kid = gw.sessionKeys[0].kid;
  gwB = await stack.startGateway({ sessionKeys: [sessionKey(kid)] });
  const foreign = (await logoutReturn(gwB, 'https://evil.example/')).state;
  const foreignPath = (await logoutReturn(gwB, '/foreign')).state;

  const flips = [];
  for (let i = 0; i < good.length; i += 3) flips.push(good.slice(0, i) + (good[i] === 'A' ? 'B' : 'A') + good.slice(i + 1));
  const cuts = [];
  for (let i = 0; i < good.length; i += 5) cuts.push(good.slice(0, i));
  const states = [
    ...hostileBases(gw.url).slice(0, 120), loginValue, sessionValue, foreign, foreignPath, `${good}${good}`, `${good}.${good}`,
    good.replace('.', '..'), `x${good}`, good.replace(/^[^.]+/, 'nokey'), good.replace(/^[^.]+/, kid.toUpperCase()), good.split('.').reverse().join('.'),
    good.replace(/-/g, '+').replace(/_/g, '/'), `${good}==`, ` ${good}`, `${good}\t`, ...flips, ...cuts, 'A'.repeat(5000), `${kid}.${'A'.repeat(4000)}`,
  ];
  const f = new Failures('post-logout states');
  // A variant can come out equal to the genuine state (e.g. no `-` or `_` to
  // swap for `+` or `/`, about one run in 25): that one rightly redirects.
  await pool(states.filter((st) => st !== good), 8, async (st) => {
    const label = `state=${JSON.stringify(st).slice(0, 80)}`;
    const r = await request(`${gw.url}/.edgeauth/logged-out?state=${encodeURIComponent(st)}`);
    f.check(r.status === 200 || r.status === 302 || (r.status >= 400 && r.status < 500), `${label}: ${r.status}`);
    const p = locationProblem(r.rawLocation, gw.url);
    f.check(!p, `${label}: ${p}`);
    if (r.status === 302) f.check(r.rawLocation === '/', `${label}: a forged state redirected to ${r.rawLocation}`);
    for (const h of hrefProblems(r.body, gw.url)) f.check(false, `${label}: ${h}`);
  });
  f.done();

  // the genuine state with hostile extra parameters: only the sealed target counts
  const extras = ['rd', 'post_logout_redirect_uri', 'redirect_uri', 'redirect', 'next', 'return_to', 'returnTo', 'url', 'target', 'continue', 'goto', 'RelayState'];
  for (const k of extras) {
    for (const v of ['https://evil.example/', '//evil.example', '/\\evil.example']) {
      for (const q of [`state=${encodeURIComponent(good)}&${k}=${encodeURIComponent(v)}`, `${k}=${encodeURIComponent(v)}&state=${encodeURIComponent(good)}`]) {
        const r = await request(`${gw.url}/.edgeauth/logged-out?${q}`);
        assert.ok(r.status === 302 || r.status === 200, `${q}: ${show(r)}`);
        if (r.status === 302) assert.equal(r.rawLocation, '/bye', `${q}: ${show(r)}`);
      }
    }
  }
  for (const q of [`state=${encodeURIComponent(foreign)}&state=${encodeURIComponent(good)}`, `state=//evil.example&state=${encodeURIComponent(good)}`]) {
    const r = await request(`${gw.url}/.edgeauth/logged-out?${q}`);
    assert.ok(!locationProblem(r.rawLocation, gw.url) && (r.status !== 302 || ['/', '/bye'].includes(r.rawLocation)), `${q}: ${show(r)}`);
  }
  console.log(`# D: ${states.length} forged states + ${extras.length * 6} extra-parameter shapes`);
});

test('no redirect variant leaked a secret into the gateway log', () => {
  const log = stack.gateways.map((g) => processLog(g.proc)).join('\n');
  const l = leaks(log, secretsOf(...stack.gateways));
  assert.deepEqual(l, [], 'gateway log');
});
