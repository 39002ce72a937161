// Session cookie integrity and key rotation: tampered, truncated or foreign
// cookies are no session; old keys keep working while listed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { CookieJar, request } from '../lib/http.mjs';
import { startStack, stopStack, startGateway, sessionKey, assertionKey } from '../lib/stack.mjs';
import { waitFor } from '../lib/procs.mjs';
import { loginOk, sessionValue, jarWithSession, show, originSaw, verifyAssertion } from '../lib/gateway-flow.mjs';

let stack; let gw; let idp; let origin; let value;

before(async () => {
  stack = await startStack();
  ({ gateway: gw, idp, origin } = stack);
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/');
  value = sessionValue(jar);
  assert.ok(value && value.length > 20, `session cookie value looks wrong: ${value}`);
});
after(() => stopStack(stack));

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const flipAt = (s, i) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);

function variants(v) {
  const out = {
    'flip first char': flipAt(v, 0),
    'flip middle char': flipAt(v, Math.floor(v.length / 2)),
    'flip char 20': flipAt(v, Math.min(20, v.length - 2)),
    'flip second to last char': flipAt(v, v.length - 2),
    'flip last char': flipAt(v, v.length - 1),
    'truncate by 1': v.slice(0, -1),
    'truncate by 16': v.slice(0, -16),
    'truncate to half': v.slice(0, Math.floor(v.length / 2)),
    'first 10 chars': v.slice(0, 10),
    'append AAAA': `${v}AAAA`,
    'doubled': v + v,
    'random same length': Array.from(crypto.randomBytes(v.length), (b) => B64[b & 63]).join(''),
    'reversed': [...v].reverse().join(''),
    empty: '',
    garbage: 'garbage',
  };
  // structured formats (kid.payload, a.b.c): swap / drop parts
  for (const sep of ['.', ':', '~']) {
    if (v.includes(sep)) {
      const parts = v.split(sep);
      out[`drop last '${sep}' part`] = parts.slice(0, -1).join(sep);
      out[`unknown key id before '${sep}'`] = ['nokey', ...parts.slice(1)].join(sep);
      out[`swap '${sep}' parts`] = [...parts].reverse().join(sep);
    }
  }
  return out;
}

async function assertNoSession(g, cookie, label) {
  const r = await request(`${g.url}/private?t=1`, { jar: jarWithSession(cookie) });
  assert.equal(r.status, 302, `${label}: expected 302 to login\n${show(r)}`);
  assert.equal(new URL(r.location).pathname, '/.edgeauth/login', `${label}: ${show(r)}`);
  const api = await request(`${g.url}/private`, { jar: jarWithSession(cookie), accept: 'application/json' });
  assert.equal(api.status, 401, `${label} (json): ${show(api)}`);
}

async function assertSession(g, cookie, label) {
  const r = await request(`${g.url}/private`, { jar: jarWithSession(cookie) });
  assert.equal(r.status, 200, `${label}: expected access\n${show(r)}`);
}

test('the genuine cookie gives access', async () => {
  await assertSession(gw, value, 'genuine');
});

test("a session's signed assertion is reused across its requests, not across sessions", async () => {
  const seen = async (g, cookie, p) => {
    const r = await request(`${g.url}${p}`, { jar: jarWithSession(cookie) });
    assert.equal(r.status, 200, show(r));
    return (await originSaw(origin, p)).at(-1).headers['x-edgeauth-assertion'];
  };
  const first = await seen(gw, value, '/reuse/1');
  // A new signature in a later second would differ (iat), so equal means reused.
  const signedAt = Number(JSON.parse(Buffer.from(first.split('.')[1], 'base64url')).iat);
  await waitFor(() => Math.floor(Date.now() / 1000) > signedAt, { timeoutMs: 3000, intervalMs: 20, what: 'the next second' });
  const second = await seen(gw, value, '/reuse/2');
  assert.equal(second, first, 'the cached assertion is reused');
  const { payload } = await verifyAssertion(gw, origin.url, second);
  assert.ok(payload.exp - Math.floor(Date.now() / 1000) >= 29, `reused with ${payload.exp} too close to now`);
  // Another session of the same person: its own assertion, whatever the cache holds.
  const jar = new CookieJar();
  await loginOk(gw, idp, jar, '/');
  const other = sessionValue(jar);
  assert.notEqual(other, value);
  const mine = await seen(gw, other, '/reuse/3');
  assert.equal((await verifyAssertion(gw, origin.url, mine)).payload.sub, 'alice');
});

test('tampered and truncated cookies are treated as no session', async () => {
  await origin.reset();
  for (const [label, v] of Object.entries(variants(value))) {
    if (v === value) continue;
    await assertNoSession(gw, v, label);
  }
  assert.deepEqual(await originSaw(origin, '/private'), [], 'a tampered cookie reached the origin');
});

test('absurdly large cookies are refused without a 2xx or 5xx', async () => {
  for (const size of [5000, 16000, 60000]) {
    const r = await request(`${gw.url}/private`, { jar: jarWithSession('A'.repeat(size)) }).catch((e) => ({ status: 0, error: e }));
    // Not a session: a browser is sent to sign in (the host takes headers this size).
    assert.equal(r.status, 302, `cookie of ${size} bytes: status ${r.status} ${r.error?.message ?? ''}`);
  }
  const parts = {};
  for (let i = 0; i < 50; i++) parts[`edgeauth_session_${i}`] = 'A'.repeat(100);
  const r = await request(`${gw.url}/private`, { jar: jarWithSession(value.slice(0, 30), parts) });
  assert.equal(r.status, 302, `50 cookie parts: ${show(r)}`);
  await assertSession(gw, value, 'still fine afterwards');
});

test('key rotation: listed old keys decrypt, removed or foreign keys do not', async () => {
  const port = Number(new URL(gw.url).port);
  const A = gw.sessionKeys[0];
  const B = sessionKey();
  const C = sessionKey();
  const restart = async (sessionKeys, assertionKeys) => {
    const old = stack.gateways.pop();
    await old.stop();
    const g = await startGateway({ port, originUrl: origin.url, issuer: idp.issuer, sessionKeys, assertionKeys });
    stack.gateways.push(g);
    return g;
  };
  // [B, A]: cookie made with A still valid; new logins use B
  let g = await restart([B, A]);
  await assertSession(g, value, 'A-cookie under [B, A]');
  const jar = new CookieJar();
  await loginOk(g, idp, jar, '/');
  const valueB = sessionValue(jar);
  // [B]: A is gone
  g = await restart([B]);
  await assertNoSession(g, value, 'A-cookie under [B]');
  await assertSession(g, valueB, 'B-cookie under [B]');
  // [C] (foreign to both cookies)
  const a1 = assertionKey('ed25519');
  const a2 = assertionKey('es256');
  g = await restart([C], [a2, a1]);
  await assertNoSession(g, valueB, 'B-cookie under foreign key C');
  await assertNoSession(g, value, 'A-cookie under foreign key C');
  // assertion key rotation: both published, the first signs (ES256)
  const jar2 = new CookieJar();
  await loginOk(g, idp, jar2, '/');
  const jwks = JSON.parse((await request(`${g.url}/.edgeauth/jwks.json`, { accept: 'application/json' })).body);
  const kids = jwks.keys.map((k) => k.kid).sort();
  assert.deepEqual(kids, [a1.kid, a2.kid].sort(), JSON.stringify(jwks));
  const ec = jwks.keys.find((k) => k.kid === a2.kid);
  assert.equal(ec.kty, 'EC');
  assert.equal(ec.crv, 'P-256');
  assert.equal(ec.x, a2.publicJwk.x);
  assert.equal(ec.y, a2.publicJwk.y);
  await origin.reset();
  const r = await request(`${g.url}/es`, { jar: jar2 });
  assert.equal(r.status, 200, show(r));
  const [rec] = await originSaw(origin, '/es');
  const { protectedHeader, payload } = await verifyAssertion(g, origin.url, rec.headers['x-edgeauth-assertion']);
  assert.equal(protectedHeader.alg, 'ES256');
  assert.equal(protectedHeader.kid, a2.kid);
  assert.equal(payload.sub, 'alice');
});
