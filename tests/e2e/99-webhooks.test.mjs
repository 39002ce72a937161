// Login events pushed to a tenant's webhook endpoints (README, "Login
// events"): signed the Standard Webhooks way and checked by a real receiver
// process with the `standardwebhooks` package; at-least-once through the KV
// outbox, retried by later requests and by the admin drain endpoint.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { Webhook } from 'standardwebhooks';
import { CookieJar, request } from '../lib/http.mjs';
import { ROOT, freePort, startProcess, waitFor } from '../lib/procs.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, login, show } from '../lib/gateway-flow.mjs';

const ADMIN_TOKEN = `adm-${crypto.randomBytes(12).toString('hex')}`;
const whsec = () => `whsec_${crypto.randomBytes(24).toString('base64')}`;
const SECRET = whsec();
// The receiver verifies with this secret; the gateway signs with it.
const UA = 'webhook-test-agent/1.0';

let stack; let gw; let receiver; let receiverPort; let deadPort;

async function startReceiver() {
  const { proc, match } = await startProcess('receiver', process.execPath, [path.join(ROOT, 'tests/tools/webhook-receiver.mjs')], {
    env: { RECEIVER_PORT: String(receiverPort), RECEIVER_SECRET: SECRET },
    ready: /receiver listening on (http:\/\/\S+)/,
  });
  return { proc, url: match[1], stop: () => proc.stop() };
}

const receiverUrl = () => `http://127.0.0.1:${receiverPort}`;
async function deliveries() {
  return (await fetch(`${receiverUrl()}/__deliveries`)).json();
}
async function setMode(mode, delayMs = 0) {
  await fetch(`${receiverUrl()}/__mode`, { method: 'POST', body: JSON.stringify({ mode, delayMs }) });
}
/** Accepted deliveries (verified, answered 2xx) by webhook-id: each event once. */
function accepted(list) {
  const byId = new Map();
  for (const d of list.filter((x) => x.verified && x.mode === 'ok')) {
    if (byId.has(d.id)) assert.equal(byId.get(d.id).body, d.body, `a retry of ${d.id} must carry the same body`);
    else byId.set(d.id, d);
  }
  return [...byId.values()].map((d) => ({ ...JSON.parse(d.body), webhookId: d.id }));
}
async function drain() {
  const r = await request(`${gw.url}/.edgeauth/admin/events/drain`, {
    method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, accept: 'application/json',
  });
  assert.equal(r.status, 200, show(r));
  return JSON.parse(r.body);
}
const ofType = (events, type) => events.filter((e) => e.type === type);

before(async () => {
  receiverPort = await freePort('127.0.0.1');
  deadPort = await freePort('127.0.0.1');
  receiver = await startReceiver();
  stack = await startStack({
    gatewayOptions: {
      allowedEmailDomains: 'example.com',
      vars: {
        admin_token: ADMIN_TOKEN,
        webhooks: JSON.stringify([
          { url: `${receiverUrl()}/hook`, secret: SECRET, events: ['login', 'signup', 'logout', 'login.denied'] },
          // Nothing ever listens here: its events expire after a second.
          { url: `http://127.0.0.1:${deadPort}/gone`, secret: whsec(), events: ['logout'], retry_for_secs: 1 },
        ]),
      },
    },
  });
  gw = stack.gateway;
});
after(async () => {
  await receiver?.stop();
  await stopStack(stack);
});

test('a first login, a login and a logout each produce one signed event', async () => {
  const jar = new CookieJar();
  await loginOk(gw, stack.idp, jar, '/', { username: 'alice' });
  let events = [];
  await waitFor(async () => {
    events = accepted(await deliveries());
    return ofType(events, 'login').length === 1 && ofType(events, 'signup').length === 1;
  }, { what: 'signup and login delivered' });
  const [signup] = ofType(events, 'signup');
  const [first] = ofType(events, 'login');
  for (const e of [signup, first]) {
    assert.equal(e.data.tenant, 'default');
    assert.match(e.data.user_id, /^p_[a-z2-7]{26}$/, 'user_id is the profile id');
    assert.equal(e.data.subject, 'alice');
    assert.equal(e.data.connection, 'default');
    assert.equal(e.data.ip, '127.0.0.1');
    assert.match(e.data.correlation_id, /^[A-Za-z0-9_-]{16,}$/);
    assert.equal(e.data.event_id, e.webhookId, 'webhook-id is the event id');
    assert.ok(Math.abs(Date.parse(e.timestamp) - Date.now()) < 60000, e.timestamp);
  }
  assert.equal(signup.data.correlation_id, first.data.correlation_id, 'one sign-in, one correlation id');
  assert.equal(signup.data.user_id, first.data.user_id, 'one person, one profile');
  assert.notEqual(signup.webhookId, first.webhookId);

  // Not the first login any more: a login, no signup.
  const jar2 = new CookieJar();
  await loginOk(gw, stack.idp, jar2, '/', { username: 'alice' });
  await waitFor(async () => ofType(accepted(await deliveries()), 'login').length === 2, { what: 'second login' });
  const out = await request(`${gw.url}/.edgeauth/logout?rd=/`, { jar: jar2, headers: { 'user-agent': UA } });
  assert.equal(out.status, 302, show(out));
  await waitFor(async () => {
    events = accepted(await deliveries());
    return ofType(events, 'logout').length === 1;
  }, { what: 'logout delivered' });
  assert.equal(ofType(events, 'signup').length, 1, 'one signup per person');
  const [logout] = ofType(events, 'logout');
  assert.equal(logout.data.user_id, first.data.user_id, 'the same profile signs out');
  assert.equal(logout.data.subject, 'alice');
  assert.equal(logout.data.user_agent, UA);
  assert.equal(events.length, 4, JSON.stringify(events.map((e) => e.type)));
});

test('signatures verify with the standardwebhooks package, and not with another secret', async () => {
  const list = (await deliveries()).filter((d) => d.verified);
  assert.ok(list.length >= 4);
  for (const d of list) {
    const headers = { 'webhook-id': d.id, 'webhook-timestamp': d.timestamp, 'webhook-signature': d.signature };
    assert.equal(d.contentType, 'application/json');
    assert.deepEqual(new Webhook(SECRET).verify(d.body, headers), JSON.parse(d.body));
    assert.throws(() => new Webhook(whsec()).verify(d.body, headers), /signature/i, 'another secret must not verify');
    assert.throws(() => new Webhook(SECRET).verify(d.body.replace('"alice"', '"mallory"'), headers), /signature/i);
  }
});

test('a denied login is an event too', async () => {
  const before = accepted(await deliveries()).length;
  const l = await login(gw, stack.idp, new CookieJar(), '/', { username: 'bob' });
  assert.equal(l.callback.status, 403, show(l.callback));
  let events = [];
  await waitFor(async () => {
    events = accepted(await deliveries());
    return events.length > before;
  }, { what: 'denied login delivered' });
  const denied = ofType(events, 'login.denied');
  assert.equal(denied.length, 1, JSON.stringify(events.map((e) => e.type)));
  assert.equal(denied[0].data.subject, 'bob');
  assert.match(denied[0].data.user_id, /^p_/);
  assert.match(denied[0].data.reason, /email/);
  assert.equal(ofType(events, 'login').filter((e) => e.data.subject === 'bob').length, 0);
});

test('a receiver that is down, then slow, then failing gets every event exactly once after it recovers', async () => {
  const seen = new Set(accepted(await deliveries()).map((e) => e.webhookId));
  const fresh = async () => accepted(await deliveries()).filter((e) => !seen.has(e.webhookId));

  await receiver.stop(); // down: connection refused
  await loginOk(gw, stack.idp, new CookieJar(), '/', { username: 'alice' });
  const jar = new CookieJar();
  await loginOk(gw, stack.idp, jar, '/', { username: 'alice' });
  await request(`${gw.url}/.edgeauth/logout?rd=/`, { jar });
  // 3 events (login, login, logout) wait in the outbox.
  let d = await drain();
  assert.ok(d.failed >= 3, JSON.stringify(d));

  receiver = await startReceiver();
  await setMode('slow', 8000); // answers after the gateway stopped waiting
  const started = Date.now();
  d = await drain();
  assert.ok(d.failed >= 1, JSON.stringify(d));
  assert.ok(Date.now() - started < 8000 * 3, 'the drain gives up on a slow receiver');

  await setMode('fail');
  d = await drain();
  assert.ok(d.failed >= 3, JSON.stringify(d));
  assert.equal((await fresh()).length, 0, 'nothing was accepted yet');

  await setMode('ok');
  await waitFor(async () => { await drain(); return (await fresh()).length >= 3; }, { what: 'outbox drained', timeoutMs: 30000 });
  const got = await fresh();
  assert.deepEqual(got.map((e) => e.type).sort(), ['login', 'login', 'logout']);
  // Every attempt of an event carried the same webhook-id: the slow and the
  // failed attempts of the events and the final one share it.
  const attempts = (await deliveries()).filter((x) => got.some((e) => e.webhookId === x.id));
  assert.ok(attempts.length > got.length, 'retries reuse the idempotency id');
  const again = await drain();
  assert.equal(again.delivered, 0, JSON.stringify(again));
});

test('later requests retry what is due, without the drain endpoint', async () => {
  const seen = new Set(accepted(await deliveries()).map((e) => e.webhookId));
  await receiver.stop();
  await loginOk(gw, stack.idp, new CookieJar(), '/', { username: 'alice' });
  receiver = await startReceiver();
  // Any login start, callback or logout request carries a bounded retry
  // pass; the first retry is due a few seconds after the failed attempt.
  await waitFor(async () => {
    await request(`${gw.url}/.edgeauth/login?rd=/`, { jar: new CookieJar() });
    return accepted(await deliveries()).some((e) => !seen.has(e.webhookId) && e.type === 'login');
  }, { what: 'login delivered by a later request', timeoutMs: 30000, intervalMs: 500 });
});

test('undeliverable events expire: counted and logged, not silently dropped', async () => {
  // The second endpoint never answers and keeps events one second.
  await waitFor(async () => (await drain()).expired_total >= 2, { what: 'expired count', timeoutMs: 20000, intervalMs: 300 });
  assert.match(gw.proc.output, /edgeauth: webhook expired evt_[A-Za-z0-9_-]+ logout to http:\/\/127\.0\.0\.1:\d+\/gone after \d+ attempt/);
});

test('the drain endpoint needs the admin token', async () => {
  for (const token of [undefined, 'wrong']) {
    const r = await request(`${gw.url}/.edgeauth/admin/events/drain`, {
      method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {}, accept: 'application/json',
    });
    assert.equal(r.status, 401, show(r));
  }
});
