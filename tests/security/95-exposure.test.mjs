// Class 10 — exposure, through the running gateway: no token or secret in any
// page, JSON, header or log the gateway writes. Covers the configuration
// error page (secrets inside malformed settings), every reserved endpoint and
// guessed debug/admin/metrics names (with and without a session), the public
// JWKS (no private parameters), userinfo (identity only), Cache-Control on
// everything the gateway writes, what the origin receives, and the gateway's
// logs after full sign-in/out cycles and failures.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request, rawRequest } from '../lib/http.mjs';
import { walkIdp } from '../lib/idp-flow.mjs';
import { startStack, stopStack, startGateway, sessionKey, assertionKey, CLIENT_SECRET } from '../lib/stack.mjs';
import { SESSION, LOGIN, loginOk, sessionValue } from '../lib/gateway-flow.mjs';
import { Failures, pool, secretsOf, leaks, processLog, show } from './lib/sec.mjs';

let stack; let gw; let idp; let origin; let jar; let session; const extra = []; const seen = { idTokens: [], codes: [], values: [] };

before(async () => {
  stack = await startStack({ gateways: 2, gatewayOptions: { vars: { routes: JSON.stringify([{ path: '/admin/', allowed_groups: ['admins'] }]), header_name: 'X-Name' } } });
  ({ gateway: gw, idp, origin } = stack);
  jar = new CookieJar();
  const l = await loginOk(gw, idp, jar, '/');
  session = sessionValue(jar);
  seen.codes.push(new URL(l.callbackUrl).searchParams.get('code'));
  seen.values.push(session, l.jarBeforeCallback.get('127.0.0.1', LOGIN)?.value);
  // the ID token the gateway holds travels only to the IdP as id_token_hint:
  // collect it from a logout redirect (of a second session: logout revokes it)
  const out = await request(`${gw.url}/.edgeauth/logout?rd=%2F`, { jar: await throwawaySession() });
  const hint = new URL(out.location).searchParams.get('id_token_hint');
  assert.ok(hint && hint.split('.').length === 3, 'logout carries id_token_hint to the IdP');
  seen.idTokens.push(hint);
});
after(async () => { await Promise.all(extra.map((g) => g.stop())); await stopStack(stack); });

/** Another signed-in jar for alice, its secrets recorded, for tests that log out. */
async function throwawaySession() {
  const j = new CookieJar();
  const l = await loginOk(gw, idp, j, '/');
  seen.codes.push(new URL(l.callbackUrl).searchParams.get('code'));
  seen.values.push(sessionValue(j), l.jarBeforeCallback.get('127.0.0.1', LOGIN)?.value);
  return j;
}

const tokens = () => [...seen.idTokens, ...seen.codes, ...seen.values].filter(Boolean);

test('the configuration error page and log never echo a secret from a malformed setting', async () => {
  const good = sessionKey();
  const secret = crypto.randomBytes(32).toString('base64url');
  const seed = assertionKey('ed25519').spec.split(':')[2];
  const bad = {
    'session key of 31 bytes': { session_keys: `k1:${crypto.randomBytes(31).toString('base64url')}` },
    'second session key malformed': { session_keys: `${good.spec},k2:${secret}x` },
    'session key without id': { session_keys: secret },
    'session key id with spaces': { session_keys: `bad id:${secret}` },
    'duplicate session key ids': { session_keys: `k1:${secret},k1:${secret}` },
    'assertion key unknown algorithm': { assertion_keys: `a1:rs256:${seed}` },
    'assertion key seed wrong length': { assertion_keys: `a1:ed25519:${seed}AA` },
    'assertion key without algorithm': { assertion_keys: `a1:${seed}` },
    'public_url with a password': { public_url: `http://u:${secret}@127.0.0.1:9` },
    'issuer with a query secret': { oidc_issuer: `http://127.0.0.2:9400/?token=${secret}` },
    'routes JSON with a secret inside': { routes: `[{"path":"/x","token":"${secret}"}]` },
    'scopes without openid (client secret set)': { oidc_scopes: 'email' },
    'session lifetime not a number': { session_lifetime_secs: secret },
  };
  const f = new Failures('misconfigurations');
  await pool(Object.entries(bad), 4, (entry) => checkMisconfig(f, entry, { secret, seed, good }));
  f.done();
});

async function checkMisconfig(f, [name, vars], { secret, seed, good }) {
  {
    const secrets = new Map([['oidc_client_secret', CLIENT_SECRET], ['test secret', secret], ['assertion seed', seed], ['good session key', good.spec.split(':')[1]]]);
    let g;
    try {
      g = await startGateway({ originUrl: origin.url, issuer: idp.issuer, vars });
    } catch (e) {
      // refusing to start is failing closed; the message must still not carry the secret
      const l = leaks(e.message, secrets);
      return f.check(l.length === 0, `${name}: the host refused to start and its log leaks ${l.join(', ')}: ${e.message.split('\n').find((x) => x.includes(secret))?.slice(0, 300)}`);
    }
    extra.push(g);
    for (const [k, v] of secretsOf(g)) secrets.set(k, v);
    for (const [path, accept] of [['/', 'text/html'], ['/.edgeauth/login', 'text/html'], ['/api', 'application/json'], ['/.edgeauth/health', '*/*']]) {
      const r = await request(`${g.url}${path}`, { accept });
      f.check(r.status === 500, `${name} ${path}: ${r.status}`);
      f.check(/misconfigured/i.test(r.body), `${name}: the page should say the gateway is misconfigured`);
      const l = leaks(r.body + JSON.stringify([...r.headers]), secrets);
      f.check(l.length === 0, `${name} ${path}: page leaks ${l.join(', ')}: ${r.body.replace(/<[^>]+>/g, ' ').slice(-300)}`);
    }
    const l = leaks(processLog(g.proc), secrets);
    f.check(l.length === 0, `${name}: log leaks ${l.join(', ')}`);
  }
}

test('a password inside origin_url is not printed when the host refuses it', async () => {
  const secret = crypto.randomBytes(32).toString('base64url');
  const f = new Failures('origin_url with a password');
  await checkMisconfig(f, ['origin_url with a password', { origin_url: `http://user:${secret}@127.0.0.1:9` }], { secret, seed: 'x'.repeat(43), good: sessionKey() });
  f.done();
});

test('reserved endpoints and guessed debug/admin names expose nothing', async () => {
  const names = ['debug', 'metrics', 'config', 'configuration', 'env', 'admin', 'vars', 'variables', 'status', 'info', 'session', 'sessions', 'token', 'tokens',
    'id_token', 'refresh', 'introspect', 'keys', 'secret', 'secrets', '.env', 'state', 'kv', 'cache', 'provider', 'jwks', 'jwks.json/', 'JWKS.JSON', 'userinfo/',
    'USERINFO', 'health/..', 'login/../debug', 'callback/x', 'pprof', 'trace', 'version', 'dump', 'logs'];
  const targets = names.map((n) => `/.edgeauth/${n}`).concat(['/.edgeauth', '/.edgeauth/', '/.EDGEAUTH/debug', '/%2eedgeauth/debug', '/.edgeauth%2fdebug', '/.edgeauth/%64ebug']);
  const f = new Failures('reserved names');
  const secrets = secretsOf(gw);
  await pool(targets, 8, async (target) => {
    for (const cookie of [null, session]) {
      const r = await rawRequest(gw.url, { target, headers: [['Accept', 'application/json'], ...(cookie ? [['Cookie', `edgeauth_session=${cookie}`]] : [])] });
      const body = r.body;
      const l = leaks(body + JSON.stringify(r.headers), secrets, tokens());
      f.check(l.length === 0, `${target}: leaks ${l.join(', ')}`);
      f.check(r.header('x-origin') === undefined, `${target}: forwarded to the origin`);
      f.check(!/edgeauth-dev-secret|session_keys|assertion_keys|"d":|private/i.test(body), `${target}: ${body.slice(0, 120)}`);
      if (r.status === 200) f.check(/^\/\.edgeauth\/(health|jwks\.json|userinfo)$/.test(target.toLowerCase()) || target.startsWith('/%2e'), `${target}: 200 ${body.slice(0, 80)}`);
    }
  });
  f.done();
});

test('the JWKS is public keys only; userinfo is the identity only', async () => {
  const jwks = JSON.parse((await request(`${gw.url}/.edgeauth/jwks.json`, { accept: 'application/json' })).body);
  for (const k of jwks.keys) {
    for (const p of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) assert.equal(k[p], undefined, `JWKS key ${k.kid} carries private parameter ${p}`);
  }
  const who = await request(`${gw.url}/.edgeauth/userinfo`, { jar, accept: 'application/json' });
  const body = JSON.parse(who.body);
  assert.deepEqual(Object.keys(body).sort(), ['email', 'email_verified', 'groups', 'name', 'session_expires_at', 'sub']);
  assert.deepEqual(leaks(who.body, secretsOf(gw), tokens()), []);
  assert.match(who.headers.get('cache-control') || '', /no-store/);
});

test('everything the gateway writes itself is no-store; nothing it writes carries a token', async () => {
  const f = new Failures('gateway responses');
  const anon = new CookieJar();
  const cases = [
    ['/private', anon], ['/private', jar], ['/.edgeauth/login?rd=%2F', anon], ['/.edgeauth/callback?code=x&state=y', anon], ['/.edgeauth/logged-out?state=x', anon],
    ['/.edgeauth/userinfo', anon], ['/.edgeauth/userinfo', jar], ['/.edgeauth/nope', anon], ['/a%2fb', anon], ['/.edgeauth/logout', anon],
  ];
  for (const [path, j] of cases) {
    for (const accept of ['text/html', 'application/json']) {
      const r = await request(`${gw.url}${path}`, { jar: j.clone(), accept });
      if (r.headers.get('x-origin')) continue;
      f.check(/no-store/.test(r.headers.get('cache-control') || ''), `${path} (${accept}) ${r.status}: cache-control ${r.headers.get('cache-control')}`);
      const headerText = JSON.stringify([...r.headers].filter(([k]) => k !== 'set-cookie'));
      const loc = r.headers.get('location') || '';
      const toIdp = loc.startsWith(`${idp.issuer}/`);
      f.check(leaks(r.body + (toIdp ? '' : headerText), secretsOf(gw), tokens()).length === 0, `${path}: ${leaks(r.body + headerText, secretsOf(gw), tokens())}`);
    }
  }
  // the only Location with an ID token is the logout redirect to the IdP's end_session_endpoint
  const out = await request(`${gw.url}/.edgeauth/logout?rd=%2F`, { jar: await throwawaySession() });
  assert.ok(out.location.startsWith(`${idp.issuer}/session/end`), show(out));
  f.done();
});

test('the origin never receives the ID token, the gateway cookies, the client secret or the code', async () => {
  await origin.reset();
  const j = new CookieJar();
  const l = await loginOk(gw, idp, j, '/o');
  seen.codes.push(new URL(l.callbackUrl).searchParams.get('code'));
  const v = sessionValue(j);
  seen.values.push(v);
  for (const p of ['/o', '/admin/x', '/p?x=1']) await request(`${gw.url}${p}`, { jar: j, headers: { cookie: `edgeauth_session=${v}; app=1; edgeauth_login=zzz` } });
  const recs = JSON.stringify(await origin.requests());
  const l2 = leaks(recs.replace(/"x-edgeauth-assertion","[^"]+"/g, '').replace(/"x-edgeauth-assertion":"[^"]+"/g, ''), secretsOf(gw), tokens());
  assert.deepEqual(l2, [], 'origin records');
  assert.doesNotMatch(recs, /edgeauth_(session|login)=/);
});

test('the gateway logs hold no token, code, cookie value or secret after sign-ins, failures and sign-outs', async () => {
  // a few more cycles, failures included
  for (const u of ['alice', 'bob']) {
    const j = new CookieJar();
    const l = await loginOk(gw, idp, j, '/', { username: u });
    seen.codes.push(new URL(l.callbackUrl).searchParams.get('code'));
    seen.values.push(sessionValue(j));
    await request(l.callbackUrl, { jar: l.jarBeforeCallback }); // replay
    await request(`${gw.url}/admin/x`, { jar: j });
    const out = await request(`${gw.url}/.edgeauth/logout?rd=%2F`, { jar: j });
    seen.idTokens.push(new URL(out.location).searchParams.get('id_token_hint'));
    const w = await walkIdp(j, out.location, { logout: true });
    if (w.location) await request(w.location, { jar: j });
  }
  const log = stack.gateways.map((g) => processLog(g.proc)).join('\n');
  const l = leaks(log, secretsOf(...stack.gateways), tokens());
  assert.deepEqual(l, [], 'gateway log');
  assert.doesNotMatch(log, /code=|state=|id_token_hint=/, 'request logs must not carry query strings of the sign-in endpoints');
  assert.ok(!log.includes(CLIENT_SECRET));
});
