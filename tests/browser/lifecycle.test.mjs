// What a person sees of the session lifecycle, in headless Chromium:
// - left idle past session_idle_timeout_secs, the next page load goes through
//   sign-in again (a new session), while browsing keeps the session alive;
// - signing out on the provider's own page (IdP-initiated, OIDC Back-Channel
//   Logout) ends the gateway session: the next page load shows the
//   provider's sign-in form.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { WORK, freePort, waitFor } from '../lib/procs.mjs';
import { startIdp, startOrigin, startGateway } from '../lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(WORK, 'screenshots');
const IDLE = 6;

let idp; let origin; let gw; let browser;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  const port = await freePort('127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  [idp, origin] = await Promise.all([
    startIdp({ gatewayUrls: [url], env: { IDP_BACKCHANNEL_LOGOUT_URI: `${url}/.edgeauth/backchannel-logout` } }),
    startOrigin(),
  ]);
  gw = await startGateway({
    port, originUrl: origin.url, issuer: idp.issuer,
    vars: { session_idle_timeout_secs: String(IDLE), session_reissue_secs: '2' },
  });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-component-update', '--disable-sync',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2',
    ],
    timeout: 60000,
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
});

async function signIn(context, username = 'alice') {
  const page = await context.newPage();
  await page.goto(`${gw.url}/dashboard`);
  await page.waitForSelector('#username');
  await page.fill('#username', username);
  await page.fill('#password', `${username}-pw`);
  await page.click('#submit');
  await page.waitForURL(`${gw.url}/dashboard`);
  assert.match(await page.content(), new RegExp(`${username}@example.com`));
  return page;
}

const sessionCookie = async (context) => (await context.cookies(gw.url)).find((c) => c.name === 'edgeauth_session')?.value;

test('browsing keeps the session; left idle, the next page load signs in again', async () => {
  const context = await browser.newContext();
  try {
    const page = await signIn(context);
    const first = await sessionCookie(context);
    const started = Date.now();
    // Active for longer than the idle timeout: one page load every second.
    while (Date.now() < started + (IDLE + 2) * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      const r = await page.goto(`${gw.url}/dashboard?t=${Date.now()}`);
      assert.equal(new URL(page.url()).origin, gw.url, `still signed in after ${Date.now() - started} ms`);
      assert.equal(r.status(), 200);
    }
    const slid = await sessionCookie(context);
    assert.notEqual(slid, first, 'the cookie was re-issued while browsing');
    // Idle now.
    const idleFrom = Date.now();
    await waitFor(() => Date.now() > idleFrom + (IDLE + 1) * 1000, { timeoutMs: (IDLE + 5) * 1000, what: 'idle time' });
    const hops = [];
    page.on('request', (req) => hops.push(new URL(req.url()).pathname));
    await page.goto(`${gw.url}/dashboard`);
    // The provider still has its own session, so sign-in completes without a
    // form; what the person passes through is the gateway's sign-in.
    await page.waitForURL(`${gw.url}/dashboard`);
    assert.ok(hops.includes('/.edgeauth/login'), `went through sign-in again: ${hops.join(' ')}`);
    assert.ok(hops.includes('/.edgeauth/callback'), hops.join(' '));
    const fresh = await sessionCookie(context);
    assert.ok(fresh && fresh !== slid, 'a new session');
    await page.screenshot({ path: path.join(SHOTS, 'idle-timeout.png') });
  } finally {
    await context.close();
  }
});

test('signing out on the provider\'s own page ends the gateway session in the browser', async () => {
  const context = await browser.newContext();
  try {
    const page = await signIn(context);
    await page.goto(`${idp.issuer}/session/end`);
    await page.click('#logout-yes');
    await page.waitForSelector('#signed-out');
    // The provider told the gateway (back-channel): the next page load is
    // the provider's sign-in form, not the app.
    // (The delivery is the provider's, possibly a moment after its page.)
    await waitFor(async () => {
      await page.goto(`${gw.url}/dashboard`);
      return new URL(page.url()).origin === idp.issuer;
    }, { timeoutMs: 10000, intervalMs: 250, what: 'the gateway session to end' });
    await page.waitForSelector('#username');
    await page.screenshot({ path: path.join(SHOTS, 'idp-logout.png') });
  } finally {
    await context.close();
  }
});
