// The login chooser in a real browser: headless Chromium opens a protected
// origin URL, gets the chooser (screenshots: desktop, narrow mobile, with a
// notice), chooses each connection in turn (one with the keyboard only) and
// ends on the origin page as the right namespaced person; home-realm
// discovery by typing a work email. Two real providers (tests/lib/federation.mjs)
// plus a GitHub-style connection (the `github` preset pointed at the
// GitHub-compatible test server, tests/lib/github.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { WORK } from '../lib/procs.mjs';
import { ENTERPRISE_DOMAIN, TENANT_NAME, connectionsFor, startFederation } from '../lib/federation.mjs';
import { githubConnection } from '../lib/github.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(WORK, 'screenshots');

let fed; let context; let profile;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  fed = await startFederation({
    github: true,
    connections: (f) => [...connectionsFor(f), githubConnection(f.github, { name: 'GitHub' })],
  });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: [
      '--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-component-update', '--disable-sync',
      // GitHub's test server shares 127.0.0.2 with the social provider.
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2, EXCLUDE 127.0.0.3',
    ],
    timeout: 60000,
  });
});

after(async () => {
  await context?.close().catch(() => {});
  await fed?.stop();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

/** A fresh page with no cookies anywhere (no gateway session, no IdP session). */
async function freshPage() {
  await context.clearCookies();
  const page = await context.newPage();
  const offsite = [];
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (!['127.0.0.1', '127.0.0.2', '127.0.0.3'].includes(u.hostname) && u.protocol.startsWith('http')) offsite.push(req.url());
  });
  page.offsite = offsite;
  return page;
}

async function signInAtIdp(page, idp, username) {
  await page.waitForSelector('#username');
  assert.equal(new URL(page.url()).origin, new URL(idp.issuer).origin, `expected ${idp.issuer}'s login page, at ${page.url()}`);
  await page.fill('#username', username);
  await page.fill('#password', `${username}-pw`);
}

test('the chooser looks like a product: screenshots at desktop and mobile widths', async () => {
  const page = await freshPage();
  await page.goto(`${fed.gateway.url}/dashboard?tab=profile`);
  await page.waitForSelector('h1');
  assert.equal(await page.textContent('h1'), `Sign in to ${TENANT_NAME}`);
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  assert.equal(await page.locator('main').count(), 1);
  assert.deepEqual(await page.locator('button.conn').allTextContents(), [
    'SContinue with Social Login', 'AContinue with Acme Corp SSO', 'GContinue with GitHub',
  ]);
  // The email field has a visible label bound to it.
  assert.equal(await page.getByLabel('Work email').getAttribute('type'), 'email');
  await page.screenshot({ path: path.join(SHOTS, 'chooser-desktop.png') });

  // Keyboard focus is visible: the first button gets an outline.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'connection-social');
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.equal(outline, 'solid', 'a focus outline');
  await page.screenshot({ path: path.join(SHOTS, 'chooser-focus.png') });

  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
  assert.equal(overflow, false, 'no horizontal scrolling at 375px');
  await page.screenshot({ path: path.join(SHOTS, 'chooser-mobile.png'), fullPage: true });

  // An address no connection serves: the notice, at mobile width.
  await page.fill('#email', 'someone@example.com');
  await Promise.all([page.waitForURL(/email=/), page.click('#email-form button')]);
  assert.equal(await page.textContent('#notice'), 'No single sign-in is set up for example.com; choose how to sign in.');
  assert.equal(await page.inputValue('#email'), 'someone@example.com');
  await page.screenshot({ path: path.join(SHOTS, 'chooser-notice-mobile.png'), fullPage: true });
  assert.deepEqual(page.offsite, []);
  await page.close();
});

/** On the GitHub test server's sign-in page, continue as `user` (#user-<key>). */
async function signInAtGithub(page, user) {
  await page.waitForSelector(`#user-${user}`);
  assert.equal(new URL(page.url()).origin, fed.github.url, `expected GitHub's sign-in page, at ${page.url()}`);
}

test('each connection, chosen in the browser, ends on the origin page as its own person', async () => {
  // [connection, how to sign in there, the origin's greeting, the namespaced user, keyboard only]
  for (const [id, signIn, name, user, keyboard] of [
    ['social', (page) => signInAtIdp(page, fed.social, 'alice'), 'Alice Example', 'social|alice', true],
    ['enterprise', (page) => signInAtIdp(page, fed.enterprise, 'alice'), 'Alice Acme', 'enterprise|alice', false],
    // GitHub's stable subject is the numeric id, not the login (which can change).
    ['github', (page) => signInAtGithub(page, 'octo'), 'The Octocat', 'github|583231', false],
  ]) {
    const page = await freshPage();
    const target = `${fed.gateway.url}/dashboard?tab=${id}`;
    await page.goto(target);
    await page.waitForSelector(`#connection-${id}`);
    if (keyboard) {
      // Keyboard only: Tab to the button, Enter.
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement.id), `connection-${id}`);
      await Promise.all([page.waitForURL((u) => u.origin !== fed.gateway.url), page.keyboard.press('Enter')]);
    } else {
      await page.click(`#connection-${id}`);
    }
    await signIn(page);
    const submit = id === 'github' ? '#user-octo' : '#submit';
    await Promise.all([page.waitForURL((u) => u.href === target, { timeout: 30000 }), page.click(submit)]);
    await page.waitForSelector('#who');
    assert.equal(await page.textContent('#who'), name);
    assert.equal(await page.textContent('#user'), user);
    const decoded = JSON.parse(await page.textContent('#assertion'));
    assert.equal(decoded.payload.sub, user);
    assert.equal(decoded.payload.connection, id);
    assert.equal(await page.textContent('#request'), `GET /dashboard?tab=${id}`);
    if (id === 'enterprise') await page.screenshot({ path: path.join(SHOTS, 'connections-origin.png'), fullPage: true });
    assert.deepEqual(page.offsite, []);
    await page.close();
  }
});

test('home-realm discovery: typing a work email goes to the company\'s provider', async () => {
  const page = await freshPage();
  const target = `${fed.gateway.url}/reports/q3`;
  await page.goto(target);
  await page.fill('#email', `Carol@${ENTERPRISE_DOMAIN.toUpperCase()}`);
  await page.press('#email', 'Enter');
  await signInAtIdp(page, fed.enterprise, 'carol');
  assert.match(await page.textContent('#idp-name'), /Acme Corp SSO/);
  await Promise.all([page.waitForURL((u) => u.href === target, { timeout: 30000 }), page.click('#submit')]);
  await page.waitForSelector('#who');
  assert.equal(await page.textContent('#user'), 'enterprise|carol');
  assert.equal(await page.textContent('#email'), `carol@${ENTERPRISE_DOMAIN}`);
  assert.deepEqual(page.offsite, []);
  await page.close();
});
