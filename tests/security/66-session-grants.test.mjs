// The refresh tokens kept server-side (gateway/core/src/refresh.rs) are
// sealed and bound to their tenant, session and connection: someone who can
// write the store (a shared Redis, a backup restored in the wrong place)
// and copies one person's grant under another session's key gets that
// session ended, and the copied refresh token never reaches the provider.
// The store never holds a token in clear.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { CookieJar, request } from '../lib/http.mjs';
import { waitFor } from '../lib/procs.mjs';
import { readKv, writeKv } from '../lib/kv.mjs';
import { startGateway, startStack, stopStack } from '../lib/stack.mjs';
import { loginOk, show } from '../lib/gateway-flow.mjs';

const INTERVAL = 2;
const USERS = Object.fromEntries(['carol', 'dave'].map((u) => [u, {
  password: `${u}-pw`, claims: { email: `${u}@example.com`, email_verified: true },
}]));
const VARS = { refresh_interval_secs: String(INTERVAL) };
let stack; let later;

before(async () => {
  stack = await startStack({
    idpEnv: { IDP_REFRESH_TOKENS: '1', IDP_TEST_HOOKS: '1', IDP_EXTRA_USERS: JSON.stringify(USERS) },
    gatewayOptions: { vars: VARS },
  });
});
after(async () => { await later?.stop(); await stopStack(stack); });

const stats = async () => (await fetch(`${stack.idp.issuer}/_test/stats`)).json();
const grantKeys = (stateDir) => Object.keys(readKv(stateDir)).filter((k) => k.startsWith('session-grant:'));

test('a grant copied under another session\'s key ends that session and is never redeemed', async () => {
  const gw = stack.gateway;
  const carol = new CookieJar();
  await loginOk(gw, stack.idp, carol, '/start', { username: 'carol' });
  const [carolKey] = grantKeys(gw.stateDir);
  assert.ok(carolKey, 'carol\'s sign-in stored a grant');
  const dave = new CookieJar();
  await loginOk(gw, stack.idp, dave, '/start', { username: 'dave' });
  const daveKey = grantKeys(gw.stateDir).find((k) => k !== carolKey);
  assert.ok(daveKey, 'dave\'s sign-in stored a grant of its own');
  const signedIn = Date.now();

  const entries = readKv(gw.stateDir);
  for (const key of [carolKey, daveKey]) {
    const stored = Buffer.from(entries[key], 'base64').toString('latin1');
    assert.doesNotMatch(stored, /"rt"|refresh|access_token|carol|dave/, `${key} is sealed`);
  }
  // The attacker's copy: carol's grant under dave's session.
  await gw.proc.stop();
  writeKv(gw.stateDir, { ...entries, [daveKey]: entries[carolKey] });
  later = await startGateway({
    port: Number(new URL(gw.url).port), originUrl: stack.origin.url, issuer: stack.idp.issuer,
    sessionKeys: gw.sessionKeys, assertionKeys: gw.assertionKeys, stateDir: gw.stateDir, vars: VARS,
  });
  await waitFor(() => Date.now() > signedIn + INTERVAL * 1000 + 1100, { timeoutMs: 10000, what: 'the sessions to be due' });
  const before_ = await stats();
  const d = await request(`${later.url}/private`, { jar: dave, accept: 'application/json' });
  assert.equal(d.status, 401, `dave's session ends: its grant is not his\n${show(d)}`);
  const after1 = await stats();
  assert.equal(after1.refresh_grants, before_.refresh_grants, 'nothing was redeemed for dave');
  assert.equal(after1.refresh_failures, before_.refresh_failures, 'carol\'s refresh token was not sent');
  // Carol's own session refreshes normally (her token was never used twice).
  const c = await request(`${later.url}/private`, { jar: carol, accept: 'application/json' });
  assert.equal(c.status, 200, show(c));
  const after2 = await stats();
  assert.equal(after2.refresh_grants, before_.refresh_grants + 1);
  assert.equal(after2.refresh_failures, before_.refresh_failures);
});
