// Class 9 — a discovery document whose endpoint URLs the WHATWG/`url` parser
// accepts (it percent-encodes or punycodes what it does not like) but an HTTP
// request URI cannot carry as written: spaces, `<`, `"`, `{`, `|`, a non-ASCII
// host. The gateway must refuse such a provider with a clear error page
// (502/503 naming the endpoint), at sign-in start or at the callback, and
// never trap (a bare 500 from the host) on the way.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { startOrigin, startGateway } from '../lib/stack.mjs';
import { waitFor } from '../lib/procs.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { Failures, pool, hostileSignIn, tokenAnswer, processLog, show } from './lib/sec.mjs';

let op; let origin; const gateways = [];

before(async () => {
  [op, origin] = await Promise.all([startHostileIdp(), startOrigin()]);
});
after(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await op?.stop();
  await origin?.stop();
});

/** Endpoint values `url::Url` accepts and `http::Uri` refuses (`i` is the issuer). */
const BAD = {
  space: (i, p) => `${i}/${p} x`,
  'less-than': (i, p) => `${i}/${p}<x`,
  quote: (i, p) => `${i}/${p}"x`,
  brace: (i, p) => `${i}/${p}{x}`,
  pipe: (i, p) => `${i}/${p}|x`,
  'non-ASCII host': (_i, p) => `https://idp-\u00e4.example/${p}`,
  'non-ASCII path': (i, p) => `${i}/${p}-\u00e9`,
};
const FIELDS = { token_endpoint: 'token', jwks_uri: 'jwks', authorization_endpoint: 'auth', end_session_endpoint: 'session/end' };

const cases = [];
for (const [field, p] of Object.entries(FIELDS)) {
  for (const [kind, make] of Object.entries(BAD)) {
    // The token endpoint and JWKS get every kind; the others one each (they
    // are parsed by the same code).
    if ((field === 'authorization_endpoint' || field === 'end_session_endpoint') && !['space', 'non-ASCII host'].includes(kind)) continue;
    cases.push({ field, kind, make: (i) => make(i, p) });
  }
}

/**
 * Walks a sign-in as far as the gateway lets it: login start, then (if it
 * redirected) the callback with a valid ID token. Returns the first answer
 * that is not a redirect to the provider.
 */
async function signIn(gw, tenant) {
  const jar = new CookieJar();
  const start = await request(`${gw.url}/.edgeauth/login?rd=%2Fafter`, { jar });
  if (start.status !== 302) return { step: 'login', res: start };
  let cb;
  try {
    ({ cb } = await hostileSignIn(gw, tenant, async ({ nonce }) => tokenAnswer(await tenant.sign(tenant.claims(nonce))), { jar }));
  } catch (e) {
    // The login went somewhere other than the provider's /auth as published.
    return { step: 'login redirect', res: { status: 302, body: e.message, url: start.url, setCookies: [] } };
  }
  if (cb.status !== 302) return { step: 'callback', res: cb };
  const out = await request(`${gw.url}/.edgeauth/logout`, { jar });
  return { step: 'logout', res: out };
}

test('endpoints an HTTP request cannot carry: a clear 502/503 page, never a trap', async () => {
  const f = new Failures('discovery endpoint variants');
  await pool(cases, 3, async (c, idx) => {
    const t = op.tenant(`uri${idx}`);
    t.discoveryExtra = { [c.field]: c.make(t.issuer) };
    const gw = await startGateway({ originUrl: origin.url, issuer: t.issuer });
    gateways.push(gw);
    const label = `${c.field} ${c.kind} ${JSON.stringify(t.discoveryExtra[c.field])}`;
    const { step, res } = await signIn(gw, t);
    f.check(res.status !== 500, `${label}: ${step} answered 500 (the component trapped?) ${show(res).slice(0, 300)}`);
    f.check([502, 503].includes(res.status), `${label}: ${step} answered ${res.status}, want a 502/503 page`);
    // Item 7: the page names the class and a reference; which endpoint is
    // unusable goes to the log line carrying that reference.
    const ref = /reference ([0-9a-f]{16})\b/.exec(res.body)?.[1];
    f.check(/identity provider/i.test(res.body) && ref,
      `${label}: ${step} page must say the identity provider is unusable, with a reference: ${res.body.slice(0, 300)}`);
    f.check(!res.body.includes(c.field), `${label}: ${step} page shows the detail (${c.field}) instead of keeping it for the log`);
    f.check(t.countOf('token') === 0, `${label}: the token endpoint was called although discovery was unusable`);
    if (ref) {
      const line = new RegExp(`edgeauth: error ${ref} [^\\n]*${c.field}`);
      try {
        await waitFor(() => line.test(processLog(gw.proc)), { what: `log line ${ref}`, timeoutMs: 10000 });
      } catch {
        f.check(false, `${label}: no log line with reference ${ref} naming ${c.field}`);
      }
    }
    const log = processLog(gw.proc);
    f.check(!/panicked|wasm trap|backtrace/i.test(log), `${label}: the gateway log shows a trap: ${log.split('\n').filter((l) => /panick|trap/i.test(l)).slice(0, 3).join(' | ')}`);
    await gw.stop();
  });
  f.done();
  console.log(`# ${cases.length} hostile discovery documents`);
});

test('the same gateway still signs people in once the provider serves a usable document again', async () => {
  const t = op.tenant('recovers');
  t.discoveryExtra = { token_endpoint: `${t.issuer}/token x` };
  const gw = await startGateway({ originUrl: origin.url, issuer: t.issuer });
  gateways.push(gw);
  const bad = await signIn(gw, t);
  assert.ok([502, 503].includes(bad.res.status), `${bad.step}: ${show(bad.res)}`);
  t.discoveryExtra = {};
  const { cb } = await hostileSignIn(gw, t, async ({ nonce }) => tokenAnswer(await t.sign(t.claims(nonce))));
  assert.equal(cb.status, 302, `a usable document is fetched again, not a cached bad one: ${show(cb)}`);
});
