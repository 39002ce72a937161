// Class 10 (issue 8, item 7) — error pages name the class of problem and a
// reference, never the detail: no configuration variable or parse error, no
// address or socket error of a failed IdP call, no error code or text the IdP
// sent, no reason an ID token was refused. The detail is in the gateway's log,
// on one line that carries the same reference, so an operator who gets the
// reference from a person finds what happened.
//
// Problems the person can act on alone (a sign-in link that expired or does
// not match this browser's sign-in) keep their plain explanation and need no
// reference; they must not echo what was sent either.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { freePort, waitFor } from '../lib/procs.mjs';
import { startOrigin, startGateway } from '../lib/stack.mjs';
import { startHostileIdp } from './lib/hostile-idp.mjs';
import { hostileSignIn, tokenAnswer, issuesSession, show } from './lib/sec.mjs';

let origin; let op; const gateways = [];

before(async () => {
  [origin, op] = await Promise.all([startOrigin(), startHostileIdp()]);
});
after(async () => {
  await Promise.all(gateways.map((g) => g.stop()));
  await origin?.stop();
  await op?.stop();
});

async function gateway(issuer, vars = {}) {
  const g = await startGateway({ originUrl: origin.url, issuer, vars });
  gateways.push(g);
  return g;
}

const REFERENCE = /reference ([0-9a-f]{16})\b/;

/** The words a person sees (tags stripped). */
const visible = (html) => html.replace(/<style>[^<]*<\/style>/g, ' ').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ');

/**
 * `r` is a short page that names a reference and none of `hidden`; the
 * gateway's log has `edgeauth: error <reference> <cls>: <detail>` with
 * `inLog` in the detail. Returns the detail.
 */
async function assertProblemPage(g, r, { status, cls, hidden, inLog }) {
  assert.equal(r.status, status, show(r));
  assert.match(r.headers.get('content-type') || '', /text\/html/, show(r));
  assert.equal(issuesSession(r), false, show(r));
  const text = visible(r.body);
  for (const h of hidden) assert.ok(!r.body.includes(h), `the page shows ${JSON.stringify(h)}: ${text}`);
  assert.doesNotMatch(text, /\/(?:home|tmp|work|etc|usr|root)\/|\.rs\b|os error|ErrorCode|panicked/i, `internal text in the page: ${text}`);
  const m = text.match(REFERENCE);
  assert.ok(m, `the page names no reference: ${text}`);
  const line = await waitFor(
    () => g.proc.output.split('\n').find((l) => l.includes(`edgeauth: error ${m[1]} `)),
    { what: `a log line with reference ${m[1]}` },
  );
  const lm = line.match(/edgeauth: error ([0-9a-f]{16}) ([a-z_]+): (.*)$/);
  assert.ok(lm, `log line shape: ${line}`);
  assert.equal(lm[2], cls, line);
  for (const w of inLog) assert.ok(lm[3].includes(w), `the log line lacks ${JSON.stringify(w)}: ${line}`);
  // The detail itself, not only the chosen words, stays off the page.
  assert.ok(!text.includes(lm[3]), `the page repeats the logged detail: ${text}`);
  return lm[3];
}

test('a misconfigured variable: the page says misconfigured and a reference; the parse error is in the log', async () => {
  const g = await gateway('http://127.0.0.2:9', { routes: '[{"path": 5}]' });
  const r = await request(`${g.url}/anything`);
  await assertProblemPage(g, r, {
    status: 500, cls: 'misconfigured',
    hidden: ['routes', 'invalid type', 'line 1', 'column'],
    inLog: ['routes'],
  });
  assert.match(visible(r.body), /misconfigured/i);
  // every request gets its own reference (and its own log line)
  const again = await request(`${g.url}/anything`);
  assert.notEqual(visible(again.body).match(REFERENCE)?.[1], visible(r.body).match(REFERENCE)[1]);
});

test('IdP discovery unreachable: no address, endpoint or socket error on the page; all of it in the log', async () => {
  const port = await freePort('127.0.0.3');
  const issuer = `http://127.0.0.3:${port}`;
  const g = await gateway(issuer);
  const r = await request(`${g.url}/.edgeauth/login?rd=%2F`, { timeoutMs: 30000 });
  await assertProblemPage(g, r, {
    status: 502, cls: 'idp_unavailable',
    hidden: ['127.0.0.3', String(port), 'discovery', 'openid-configuration', 'refused', 'connect'],
    inLog: ['discovery'],
  });
});

test("the token endpoint's error: neither its code nor its text on the page; the code (not the text) in the log", async () => {
  const t = op.tenant('token-error');
  const g = await gateway(t.issuer);
  const description = 'client edgeauth is unknown here (IdP internal note 7f3a)';
  const { cb } = await hostileSignIn(g, t, () => ({ status: 401, json: { error: 'invalid_client', error_description: description } }));
  await assertProblemPage(g, cb, {
    status: 502, cls: 'token_endpoint',
    hidden: ['invalid_client', description, '7f3a', 'HTTP 401'],
    inLog: ['invalid_client', '401'],
  });
  // error_description may echo what the IdP was sent: it is logged nowhere
  assert.ok(!g.proc.output.includes('7f3a'), 'the IdP\'s error text reached the log');
  const html = await hostileSignIn(g, t, () => ({ status: 500, contentType: 'text/html', body: '<h1>java.lang.NullPointerException at Token.java:42</h1>' }));
  await assertProblemPage(g, html.cb, {
    status: 502, cls: 'token_endpoint', hidden: ['500', 'NullPointer', 'Token.java'], inLog: ['500'],
  });
});

test('an IdP error callback: its error code stays off the page', async () => {
  const t = op.tenant('error-callback');
  const g = await gateway(t.issuer);
  const { cb } = await hostileSignIn(g, t, () => ({ status: 400, json: { error: 'invalid_grant' } }), {
    callbackQuery: ({ state }) => `error=temporarily_unavailable_db_shard_3&state=${encodeURIComponent(state)}`,
  });
  await assertProblemPage(g, cb, {
    status: 502, cls: 'idp_error', hidden: ['temporarily_unavailable', 'shard'], inLog: ['temporarily_unavailable_db_shard_3'],
  });
});

test('an ID token that fails verification (nonce of another sign-in): the reason is logged, not shown', async () => {
  const t = op.tenant('bad-token');
  const g = await gateway(t.issuer);
  const { cb } = await hostileSignIn(g, t, async () => tokenAnswer(await t.sign(t.claims('nonce-of-another-sign-in'))));
  const detail = await assertProblemPage(g, cb, {
    status: 502, cls: 'verification_failed', hidden: ['nonce', 'kid', 'signature', 'claim'], inLog: [],
  });
  assert.match(detail, /nonce/i, 'the log says which check failed');
});

test('a callback whose state belongs to no sign-in here: the plain explanation, nothing echoed, no reference', async () => {
  const t = op.tenant('bad-state');
  const g = await gateway(t.issuer);
  const forged = 'forged-state-5d1c';
  const { cb } = await hostileSignIn(g, t, () => tokenAnswer('x.y.z'), {
    callbackQuery: ({ code }) => `code=${code}&state=${forged}`,
  });
  assert.equal(cb.status, 400, show(cb));
  assert.equal(issuesSession(cb), false);
  const text = visible(cb.body);
  assert.match(text, /Sign-in expired/);
  assert.ok(!cb.body.includes(forged), `the state is echoed: ${text}`);
  assert.doesNotMatch(text, REFERENCE);
});
