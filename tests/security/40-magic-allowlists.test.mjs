// Class 4 — magic allowlists, through the running gateway: no User-Agent
// (crawlers, health checkers, empty), method (OPTIONS preflight, HEAD, TRACE,
// WebDAV, lower-case and unknown methods), file extension (static assets,
// well-known files, health/metrics names) or request header (CORS preflight,
// XHR, prefetch, websocket upgrade, Authorization) opens a protected path
// without a session. Only what a route rule names is public, and only for the
// methods it names.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, stopStack } from '../lib/stack.mjs';
import { Failures, pool } from './lib/sec.mjs';
import { OriginIndex, probe } from './lib/probe.mjs';

const ROUTES = [
  { path: '/api/preflight/*', public: true, methods: ['OPTIONS'] },
  { path: '/public/', public: true },
  { path: '/api/', api: true },
];

let stack; let gw; let idx;

before(async () => {
  stack = await startStack({ gatewayOptions: { vars: { routes: JSON.stringify(ROUTES) } } });
  gw = stack.gateway;
  idx = new OriginIndex(stack.origin);
});
after(() => stopStack(stack));

const UAS = ['Googlebot/2.1 (+http://www.google.com/bot.html)', 'Mozilla/5.0 (compatible; bingbot/2.0)', 'kube-probe/1.29', 'ELB-HealthChecker/2.0', 'GoogleHC/1.0',
  'Prometheus/2.51.0', 'curl/8.5.0', 'Pingdom.com_bot_version_1.4', 'UptimeRobot/2.0', 'Slackbot-LinkExpanding 1.0', 'facebookexternalhit/1.1', 'edgeauth',
  'Mozilla/5.0 HeadlessChrome/120.0', null];
const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND', 'get', 'options', 'FOO'];
const PATHS = ['/private', '/favicon.ico', '/robots.txt', '/x.css', '/app.js', '/img.png', '/font.woff2', '/app.js.map', '/index.html', '/data.json',
  '/.well-known/security.txt', '/.well-known/openid-configuration', '/.well-known/acme-challenge/x', '/healthz', '/health', '/metrics', '/ping', '/status',
  '/api/health', '/x.css?v=1', '/private/.css', '/private%2ecss', '/sitemap.xml', '/api/preflight', '/api/preflightx', '/API/preflight/x', '/public'];
const EXTRAS = [
  [['Origin', 'https://evil.example'], ['Access-Control-Request-Method', 'GET'], ['Access-Control-Request-Headers', 'authorization']],
  [['X-Requested-With', 'XMLHttpRequest']], [['Purpose', 'prefetch']], [['Sec-Purpose', 'prefetch;prerender']],
  [['Upgrade', 'websocket'], ['Connection', 'Upgrade'], ['Sec-WebSocket-Version', '13'], ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ==']],
  [['Authorization', 'Basic YWxpY2U6YWxpY2UtcHc=']], [['Authorization', 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.']],
  [['X-Forwarded-For', '127.0.0.1'], ['X-Real-IP', '10.0.0.1']], [['Sec-Fetch-Mode', 'no-cors'], ['Sec-Fetch-Dest', 'image']], [['Accept', 'image/*']], [],
];

function check(f, c, r) {
  const label = `${c.method} ${c.target} UA=${JSON.stringify(c.ua)} extra=${JSON.stringify(c.extra.map(([k]) => k))}`;
  const path = c.target.split('?')[0];
  // a prefix rule covers the bare prefix too (README: "the prefix itself and everything below it")
  const publicByRule = (c.method === 'OPTIONS' && (path === '/api/preflight' || path.startsWith('/api/preflight/'))) || path === '/public' || path.startsWith('/public/');
  if (publicByRule) {
    // forwarded without identity, or refused (unknown/lower-case methods)
    return f.check(r.reached ? !r.reached.headers['x-auth-request-user'] : [400, 405, 501].includes(r.status), `${label}: public by rule but ${r.status}`);
  }
  f.check(!r.reached, `${label}: NO SESSION but the origin got ${r.reached?.method} ${r.reached?.url}`);
  f.check(!r.fromOrigin, `${label}: answered by the origin`);
  const loc = r.header('location');
  const okRedirect = r.status === 302 && ['GET', 'HEAD'].includes(c.method) && new URL(loc, gw.url).pathname === '/.edgeauth/login';
  f.check(okRedirect || [400, 401, 405, 501].includes(r.status), `${label}: ${r.status} ${loc || ''}`);
  f.check(!(r.status === 302 && !['GET', 'HEAD'].includes(c.method)), `${label}: ${c.method} answered with a login redirect`);
}

test('no User-Agent, method, extension or header opens a protected path', async () => {
  const cases = [];
  let i = 0;
  const add = (method, target, ua, extra) => cases.push({ method, target, ua, extra, i: i++ });
  for (const m of METHODS) for (const p of PATHS) add(m, p, UAS[i % UAS.length], EXTRAS[(i * 5) % EXTRAS.length]);
  for (const ua of UAS) for (const p of PATHS) add('GET', p, ua, EXTRAS[(i * 3) % EXTRAS.length]);
  for (const ua of UAS) for (const m of METHODS) for (const ex of EXTRAS) if ((i++ % 3) === 0) add(m, '/private', ua, ex);
  const f = new Failures('allowlist probes');
  await pool(cases, 8, async (c) => {
    const headers = [...(c.ua === null ? [] : [['User-Agent', c.ua]]), ...c.extra];
    const body = ['POST', 'PUT', 'PATCH'].includes(c.method) ? 'x=1' : null;
    const hasAccept = c.extra.some(([k]) => k === 'Accept');
    check(f, c, await probe(gw.url, idx, { method: c.method, target: c.target, headers, body, accept: hasAccept ? null : 'text/html' }));
  });
  f.done();
  console.log(`# ${cases.length} UA x method x path x header probes`);
});

test('the configured OPTIONS rule opens exactly its path and method, without identity', async () => {
  const yes = await probe(gw.url, idx, { method: 'OPTIONS', target: '/api/preflight/x', headers: [['Origin', 'https://app.example'], ['Access-Control-Request-Method', 'POST']] });
  assert.equal(yes.status, 200);
  assert.ok(yes.reached, 'configured preflight reaches the origin');
  assert.equal(yes.reached.headers['x-auth-request-user'], undefined);
  for (const [method, target] of [['GET', '/api/preflight/x'], ['POST', '/api/preflight/x'], ['HEAD', '/api/preflight/x'], ['options', '/api/preflight/x'],
    ['OPTIONS', '/api/preflightx'], ['OPTIONS', '/API/preflight/x'], ['OPTIONS', '/api/x'], ['OPTIONS', '/api/preflight/../x'],
    ['OPTIONS', '/api/preflight/%2e%2e/x'], ['OPTIONS', '/api/preflight%2fx'], ['OPTIONS', '*']]) {
    const r = await probe(gw.url, idx, { method, target, accept: 'application/json' });
    assert.ok(!r.reached, `${method} ${target}: reached the origin (${r.status})`);
    assert.ok([400, 401, 404, 405].includes(r.status), `${method} ${target}: ${r.status}`);
  }
});
