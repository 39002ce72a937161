// Class 2 — header trust, through the running gateway. Client-sent identity
// headers (the gateway's own names, configured custom names, the common names
// of other gateways and assertion headers) in every spelling — case, `_` for
// `-`, duplicates, comma-joined values, before/after the cookie — never reach
// the recording origin, with or without a session, on protected and public
// paths. X-Forwarded-*/Forwarded/X-Original-URL do not steer routing or
// policy, and the origin cannot set the gateway's cookies or identity.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, rawRequest, request } from '../lib/http.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, sessionValue, verifyAssertion } from '../lib/gateway-flow.mjs';
import { startHostileOrigin } from './lib/hostile-origin.mjs';
import { Failures, pool, secretsOf, leaks, processLog } from './lib/sec.mjs';

const ROUTES = JSON.stringify([
  { path: '/public/', public: true },
  { path: '/admin/', allowed_groups: ['admins'] },
  { path: '/api/', api: true },
]);
const CUSTOM = {
  header_user: 'X-Custom-User', header_email: 'X-Custom-Mail', header_groups: 'X-Team',
  header_name: 'X-Display-Name', assertion_header: 'X-Custom-Assertion',
};

let stack; let origin; let idp; let gwD; let gwC; let gwH; let hostile;
const sess = {};

before(async () => {
  stack = await startStack({ gateways: 3, gatewayOptions: { vars: { routes: ROUTES } } });
  ({ idp, origin, gateway: gwD } = stack);
  gwC = await stack.startGateway({ vars: { routes: ROUTES, ...CUSTOM } });
  hostile = await startHostileOrigin();
  gwH = await stack.startGateway({ originUrl: hostile.url });
  for (const [name, g] of [['D', gwD], ['C', gwC], ['H', gwH]]) {
    for (const user of ['alice', 'bob']) {
      const jar = new CookieJar();
      await loginOk(g, idp, jar, '/', { username: user });
      sess[`${name}-${user}`] = sessionValue(jar);
    }
  }
});
after(async () => { await stopStack(stack); await hostile?.stop(); });

// ------------------------------------------------------------ names and spellings
/** Required by security-cases.md and the README. */
const REQUIRED = [
  'X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Auth-Request-Groups', 'X-Auth-Request-Preferred-Username',
  'X-Auth-Request-Access-Token', 'X-Auth-Request-Anything', 'X-Forwarded-User', 'X-Forwarded-Email', 'X-Forwarded-Groups',
  'X-Forwarded-Access-Token', 'X-Forwarded-Preferred-Username', 'Remote-User', 'Remote-Email', 'Remote-Groups', 'Remote-Name',
  'X-Remote-User', 'X-Edgeauth-Assertion', 'X-Edgeauth-User', 'X-Edgeauth-Anything', 'X-User', 'X-Email', 'X-Id-Token', 'X-Access-Token',
  'Cf-Access-Jwt-Assertion', 'Cf-Access-Authenticated-User-Email', 'X-Amzn-Oidc-Data', 'X-Amzn-Oidc-Identity', 'X-Amzn-Oidc-Accesstoken',
  'X-Ms-Client-Principal', 'X-Ms-Client-Principal-Name', 'X-Ms-Client-Principal-Id', 'X-Pomerium-Jwt-Assertion', 'X-Pomerium-Claim-Email',
  'X-Vouch-User', 'X-Goog-Authenticated-User-Email', 'X-Userinfo',
];
/** Routing/proxy headers: not trusted, replaced by the gateway's own or removed. */
const ROUTING = ['X-Forwarded-Host', 'X-Forwarded-Proto', 'X-Forwarded-Port', 'X-Forwarded-For', 'X-Forwarded-Uri', 'X-Forwarded-Prefix',
  'Forwarded', 'X-Real-Ip', 'X-Original-Url', 'X-Original-Uri', 'X-Rewrite-Url'];
/**
 * Identity and assertion headers of other widely deployed proxies and apps
 * (Google IAP, Azure App Service, Grafana/Kubernetes auth proxies, Kong).
 */
const EXTENDED = ['X-Goog-Iap-Jwt-Assertion', 'X-Goog-Authenticated-User-Id', 'X-Ms-Client-Principal-Idp', 'X-Ms-Token-Aad-Id-Token',
  'X-Webauth-User', 'X-Webauth-Email', 'X-Remote-Group', 'X-Remote-Extra-Scopes', 'Impersonate-User', 'Impersonate-Group',
  'X-Authenticated-User', 'X-Authenticated-Userid', 'X-Consumer-Username', 'X-User-Id', 'X-User-Email', 'X-Forwarded-Login'];

function spellings(name) {
  const lower = name.toLowerCase();
  const under = name.replace(/-/g, '_');
  const mixed = [...lower].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
  const firstUnder = name.replace('-', '_');
  return [...new Set([name, lower, name.toUpperCase(), mixed, under, under.toLowerCase(), under.toUpperCase(), firstUnder, mixed.replace(/-/g, '_')])];
}

let n = 0;
/** [name, value] lines: each spelling once, the canonical name duplicated, comma-joined values. */
function spoofLines(names) {
  const out = [];
  for (const name of names) {
    for (const s of spellings(name)) out.push([s, `SPOOF${++n}`]);
    out.push([name, `SPOOF${++n}`], [name, `SPOOF${++n}, admins`], [name.toLowerCase(), `SPOOF${++n},alice@example.com`]);
  }
  return out;
}
const batches = (list, size) => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

function originLines(rec) {
  const out = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) out.push([rec.rawHeaders[i], rec.rawHeaders[i + 1]]);
  return out;
}

/**
 * Send each batch of spoofed lines to `target` (tagged with a unique query),
 * with `cookie` (or none), and return [batch, response, origin record|undefined].
 */
async function sendBatches(g, o, lines, { target, cookie, accept = 'text/html', size = 40, method = 'GET' }) {
  const tagged = batches(lines, size).map((b, i) => ({ b, tag: `t${++n}x${i}` }));
  return pool(tagged, 4, async ({ b, tag }) => {
    const sep = target.includes('?') ? '&' : '?';
    const hdrs = [...b.slice(0, size / 2), ['Accept', accept], ...(cookie ? [['Cookie', cookie]] : []), ...b.slice(size / 2)];
    const r = await rawRequest(g.url, { method, target: `${target}${sep}tag=${tag}`, headers: hdrs });
    const rec = (await o.requests()).find((x) => x.url.includes(`tag=${tag}`));
    return [b, r, rec];
  });
}

const OWN = ['x-auth-request-user', 'x-auth-request-email', 'x-auth-request-groups', 'x-auth-request-profile', 'x-edgeauth-assertion'];

// ------------------------------------------------------------ tests
test('with a session: no spoofed identity header reaches the origin, only the gateway\'s own', async () => {
  const lines = spoofLines([...REQUIRED, ...ROUTING]);
  const f = new Failures('spoof batches');
  for (const [label, target] of [['protected', '/spoof'], ['public', '/public/spoof'], ['api', '/api/spoof'], ['admin', '/admin/spoof']]) {
    const res = await sendBatches(gwD, origin, lines, { target, cookie: `edgeauth_session=${sess['D-alice']}` });
    for (const [b, r, rec] of res) {
      f.check(r.status === 200 && rec, `${label}: status ${r.status}, origin ${rec ? 'saw it' : 'saw nothing'}`);
      if (!rec) continue;
      const lns = originLines(rec);
      const bad = lns.filter(([, v]) => /SPOOF/.test(v));
      f.check(bad.length === 0, `${label}: spoofed lines reached the origin: ${JSON.stringify(bad.slice(0, 5))} (sent ${b.length})`);
      const idn = lns.filter(([k]) => /^(x-auth-request-|x-edgeauth-|remote-|x-remote-|x-forwarded-(user|email|groups|access)|x-user$|x-email$)/i.test(k) || /_/.test(k));
      f.check(idn.every(([k]) => OWN.includes(k.toLowerCase())), `${label}: identity-like headers the gateway did not set: ${JSON.stringify(idn.filter(([k]) => !OWN.includes(k.toLowerCase())))}`);
      for (const h of OWN) f.check(lns.filter(([k]) => k.toLowerCase() === h).length === 1, `${label}: ${h} sent ${lns.filter(([k]) => k.toLowerCase() === h).length} times`);
      f.check(rec.headers['x-auth-request-user'] === 'alice' && rec.headers['x-auth-request-groups'] === 'admins,devs', `${label}: identity ${rec.headers['x-auth-request-user']}/${rec.headers['x-auth-request-groups']}`);
      f.check(/^p_[a-z2-7]{26}$/.test(rec.headers['x-auth-request-profile'] ?? ''), `${label}: profile ${rec.headers['x-auth-request-profile']}`);
      f.check(rec.headers['x-forwarded-host'] === new URL(gwD.url).host && rec.headers['x-forwarded-proto'] === 'http', `${label}: x-forwarded-host/proto ${rec.headers['x-forwarded-host']} ${rec.headers['x-forwarded-proto']}`);
      f.check(!rec.headers.forwarded && !rec.headers['x-original-url'] && !rec.headers['x-real-ip'] && !rec.headers['x-rewrite-url'], `${label}: routing headers passed through`);
      f.check(new URL(rec.url, 'http://x').pathname === target, `${label}: origin path ${rec.url}`);
    }
  }
  f.done();
  console.log(`# ${lines.length} spoofed header lines x 4 path kinds (with session)`);
});

test('without a session: protected paths forward nothing; public paths forward no identity at all', async () => {
  const lines = spoofLines([...REQUIRED, ...ROUTING]);
  const f = new Failures('anonymous spoof batches');
  for (const [target, accept, want] of [['/spoof-anon', 'text/html', 302], ['/spoof-anon', 'application/json', 401], ['/api/x', 'text/html', 401], ['/admin/x', 'text/html', 302]]) {
    for (const [, r, rec] of await sendBatches(gwD, origin, lines, { target, accept })) {
      f.check(r.status === want, `${target} (${accept}): ${r.status}, want ${want}`);
      f.check(!rec, `${target}: reached the origin without a session`);
    }
  }
  for (const [, r, rec] of await sendBatches(gwD, origin, lines, { target: '/public/page' })) {
    f.check(r.status === 200 && rec, `public: ${r.status}`);
    if (!rec) continue;
    const lns = originLines(rec);
    f.check(!lns.some(([, v]) => /SPOOF/.test(v)), `public: spoofed value reached the origin: ${JSON.stringify(lns.filter(([, v]) => /SPOOF/.test(v)).slice(0, 4))}`);
    f.check(!lns.some(([k]) => OWN.includes(k.toLowerCase())), `public: identity headers without a session: ${JSON.stringify(lns.filter(([k]) => OWN.includes(k.toLowerCase())))}`);
  }
  f.done();
});

test('custom identity header names: client-sent copies in any spelling are stripped', async () => {
  const names = [...Object.values(CUSTOM), 'X-Auth-Request-User', 'X-Edgeauth-Assertion'];
  const lines = spoofLines(names);
  const f = new Failures('custom-name batches');
  for (const target of ['/c', '/public/c']) {
    for (const cookie of [`edgeauth_session=${sess['C-alice']}`, null]) {
      for (const [, r, rec] of await sendBatches(gwC, origin, lines, { target, cookie })) {
        if (!cookie && target === '/c') { f.check(r.status === 302 && !rec, `anon ${target}: ${r.status}`); continue; }
        f.check(r.status === 200 && rec, `${target}: ${r.status}`);
        if (!rec) continue;
        const lns = originLines(rec);
        f.check(!lns.some(([, v]) => /SPOOF/.test(v)), `${target} cookie=${!!cookie}: ${JSON.stringify(lns.filter(([, v]) => /SPOOF/.test(v)).slice(0, 4))}`);
        if (cookie) {
          f.check(rec.headers['x-custom-user'] === 'alice' && rec.headers['x-team'] === 'admins,devs' && rec.headers['x-display-name'] === 'Alice Example', `custom identity: ${JSON.stringify(rec.headers)}`);
          f.check(!rec.headers['x-auth-request-user'] && !rec.headers['x-edgeauth-assertion'], 'default names still sent');
          f.check(typeof rec.headers['x-custom-assertion'] === 'string' && !Array.isArray(rec.headers['x-custom-assertion']), 'assertion header');
        }
      }
    }
  }
  f.done();
  // the custom assertion verifies, so it is the gateway's
  const jar = new CookieJar();
  jar.set('127.0.0.1', 'edgeauth_session', sess['C-alice']);
  await origin.reset();
  await request(`${gwC.url}/verify-me`, { jar, headers: { 'x-custom-assertion': 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.' } });
  const rec = (await origin.requests()).find((x) => x.url === '/verify-me');
  const { payload } = await verifyAssertion(gwC, origin.url, rec.headers['x-custom-assertion']);
  assert.equal(payload.sub, 'alice');
});

test('X-Forwarded-*/Forwarded/X-Original-URL/Host do not steer routing or policy', async () => {
  const steer = (to) => [['X-Original-URL', to], ['X-Original-Uri', to], ['X-Rewrite-URL', to], ['X-Forwarded-Uri', to], ['X-Forwarded-Prefix', to],
    ['X-Forwarded-Path', to], ['X-Envoy-Original-Path', to], ['X-Forwarded-Host', 'public.example'], ['Forwarded', `for=1.2.3.4;host=evil.example;proto=https`],
    ['X-Forwarded-For', '1.2.3.4'], ['X-Real-IP', '1.2.3.4'], ['X-Forwarded-Proto', 'https'], ['X-HTTP-Method-Override', 'OPTIONS'], ['X-HTTP-Method', 'OPTIONS'], ['X-Method-Override', 'OPTIONS']];
  const f = new Failures('routing header cases');
  const cases = [];
  for (const to of ['/public/x', '/public/', '/.edgeauth/health', '/']) {
    cases.push({ target: '/admin/x', cookie: sess['D-bob'], want: [403], label: `bob /admin/x steer ${to}` });
    cases.push({ target: '/admin/x', cookie: null, want: [302], label: `anon /admin/x steer ${to}` });
    cases.push({ target: '/private', cookie: null, want: [302], label: `anon /private steer ${to}` });
    cases.push({ target: '/api/x', cookie: null, want: [401], label: `anon /api/x steer ${to}` });
  }
  for (const to of ['/admin/x', '/private', '/.edgeauth/userinfo']) cases.push({ target: '/public/ok', cookie: null, want: [200], label: `anon /public/ok steer ${to}`, path: '/public/ok' });
  await origin.reset();
  await pool(cases, 4, async (c) => {
    const tag = `rt${++n}`;
    const r = await rawRequest(gwD.url, { target: `${c.target}?tag=${tag}`, headers: [...steer(c.path ? '/admin/x' : '/public/x'), ['Accept', 'text/html'], ...(c.cookie ? [['Cookie', `edgeauth_session=${c.cookie}`]] : [])] });
    const rec = (await origin.requests()).find((x) => x.url.includes(`tag=${tag}`));
    f.check(c.want.includes(r.status), `${c.label}: ${r.status}`);
    if (c.want[0] !== 200) return f.check(!rec, `${c.label}: reached the origin`);
    f.check(rec && new URL(rec.url, 'http://x').pathname === c.path, `${c.label}: origin path ${rec?.url}`);
    f.check(rec && rec.method === 'GET', `${c.label}: method override honoured: ${rec?.method}`);
    f.check(rec && rec.headers['x-forwarded-for'] !== '1.2.3.4' && !String(rec.headers['x-forwarded-for']).includes('1.2.3.4'), `${c.label}: client X-Forwarded-For kept: ${rec?.headers['x-forwarded-for']}`);
    f.check(rec && !rec.headers['x-real-ip'] && !rec.headers.forwarded && rec.headers['x-forwarded-host'] === new URL(gwD.url).host, `${c.label}: routing headers ${JSON.stringify(rec?.headers)}`);
  });
  f.done();
});

test('extended set: identity/assertion headers of other proxies (IAP, App Service, Grafana, Kubernetes, Kong) are stripped', async () => {
  const lines = spoofLines(EXTENDED);
  const passed = new Set();
  for (const cookie of [`edgeauth_session=${sess['D-alice']}`, null]) {
    for (const [, r, rec] of await sendBatches(gwD, origin, lines, { target: '/public/ext', cookie })) {
      assert.equal(r.status, 200);
      for (const [k, v] of originLines(rec)) if (/SPOOF/.test(v)) passed.add(k.toLowerCase().replace(/_/g, '-'));
    }
  }
  assert.deepEqual([...passed].sort(), [], `client-sent identity headers forwarded to the origin: ${[...passed].sort().join(', ')}`);
});

test('malformed header lines (obs-fold, space before colon, NUL, huge) never smuggle identity', async () => {
  // The host refuses what RFC 9112 forbids with 400 (obs-fold in a request,
  // whitespace between name and colon or before the first line's name, NUL);
  // well-formed lines are served and the spoofed identity header is stripped.
  const cases = [
    [400, 'obs-fold', [['X-Auth-Request-User', 'SPOOFa\r\n admin']]],
    [400, 'space before colon', [['X-Auth-Request-User ', 'SPOOFb']]],
    [400, 'tab before colon', [['X-Auth-Request-User\t', 'SPOOFc']]],
    [400, 'NUL in value', [['X-Auth-Request-User', 'SPOOFd\x00x']]],
    [200, '20 kB value', [['X-Auth-Request-User', `SPOOFe${'A'.repeat(20000)}`]]],
    [400, 'leading space (continuation of the request line)', [[' X-Auth-Request-User', 'SPOOFf']]],
    [200, 'CRLF inside a value: a line of its own', [['X-Foo', 'bar\r\nX-Auth-Request-User: SPOOFg']]],
    [200, 'Content-Length 0', [['Content-Length', '0'], ['X-Auth-Request-User', 'SPOOFh']]],
    [200, 'named in Connection', [['Connection', 'X-Auth-Request-User, close'], ['X-Auth-Request-User', 'SPOOFi']]],
  ];
  await origin.reset();
  const f = new Failures('malformed header lines');
  for (const [want, label, hdrs] of cases) {
    for (const cookie of [sess['D-alice'], null]) {
      const r = await rawRequest(gwD.url, { target: '/public/mal', headers: [...hdrs, ...(cookie ? [['Cookie', `edgeauth_session=${cookie}`]] : [])] })
        .catch((e) => ({ status: `no answer (${e.message})` }));
      f.check(r.status === want, `${label}${cookie ? ' (signed in)' : ''}: ${r.status}, expected ${want}`);
    }
  }
  f.done();
  const raw = JSON.stringify(await origin.requests());
  assert.doesNotMatch(raw, /SPOOF/, 'a malformed line smuggled a value to the origin');
  assert.equal((await origin.requests()).length, cases.filter(([want]) => want === 200).length * 2, 'every well-formed request is served');
});

test('the origin cannot set the gateway\'s cookies nor its identity for the client', async () => {
  const jar = new CookieJar();
  jar.set('127.0.0.1', 'edgeauth_session', sess['H-alice']);
  const r = await request(`${gwH.url}/set-gw-cookies`, { jar });
  assert.equal(r.status, 200);
  const names = r.setCookies.map((c) => c.split('=')[0].trim());
  const gatewayNamed = (x) => x.replace(/^__Host-/, '').toLowerCase().startsWith('edgeauth_');
  assert.deepEqual(names.filter(gatewayNamed), [], `origin-set gateway cookies reached the client: ${JSON.stringify(r.setCookies)}`);
  assert.ok(names.includes('app'), 'ordinary origin cookies pass');
  const who = await request(`${gwH.url}/.edgeauth/userinfo`, { jar, accept: 'application/json' });
  assert.equal(JSON.parse(who.body).sub, 'alice', 'the session is still the gateway\'s');
});

test('no secret or session value in the gateway logs', () => {
  const log = stack.gateways.map((g) => processLog(g.proc)).join('\n');
  assert.deepEqual(leaks(log, secretsOf(...stack.gateways), Object.values(sess)), []);
});
