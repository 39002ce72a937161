// One real-browser sign-in: headless Chromium opens a protected origin URL,
// gets the IdP login page, signs in as alice and lands on the origin page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { WORK } from '../lib/procs.mjs';
import { startStack, stopStack } from '../lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH
  || '/usr/bin/chromium';
const SHOTS = path.join(WORK, 'screenshots');

let stack; let context; let profile;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  stack = await startStack();
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
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
  await context?.close().catch(() => {});
  await stopStack(stack);
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

test('alice signs in with a real browser and sees her identity on the origin page', async () => {
  const { gateway: gw, idp } = stack;
  const page = await context.newPage();
  const offsite = [];
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (!['127.0.0.1', '127.0.0.2'].includes(u.hostname) && u.protocol.startsWith('http')) offsite.push(req.url());
  });
  const target = `${gw.url}/dashboard?tab=profile`;
  await page.goto(target);
  await page.waitForSelector('#username');
  assert.equal(new URL(page.url()).origin, idp.issuer, `expected the IdP login page, at ${page.url()}`);
  await page.screenshot({ path: path.join(SHOTS, 'login.png') });

  // wrong password first: the IdP says so and we stay there
  await page.fill('#username', 'alice');
  await page.fill('#password', 'wrong');
  await page.click('#submit');
  await page.waitForSelector('#error');
  assert.match(await page.textContent('#error'), /Invalid username or password/);

  await page.fill('#username', 'alice');
  await page.fill('#password', 'alice-pw');
  await Promise.all([
    page.waitForURL((u) => u.href === target, { timeout: 30000 }),
    page.click('#submit'),
  ]);
  await page.waitForSelector('#who');
  assert.equal(await page.textContent('#who'), 'Alice Example');
  assert.equal(await page.textContent('#user'), 'alice');
  assert.equal(await page.textContent('#email'), 'alice@example.com');
  assert.equal(await page.textContent('#groups'), 'admins,devs');
  const decoded = JSON.parse(await page.textContent('#assertion'));
  assert.equal(decoded.payload.iss, gw.url);
  assert.equal(decoded.payload.sub, 'alice');
  assert.equal(await page.textContent('#request'), 'GET /dashboard?tab=profile');
  await page.screenshot({ path: path.join(SHOTS, 'origin.png'), fullPage: true });

  // the session cookie is HttpOnly: page script cannot read it
  assert.doesNotMatch(await page.evaluate(() => document.cookie), /edgeauth_/);
  const cookies = await context.cookies(gw.url);
  const session = cookies.find((c) => c.name === 'edgeauth_session');
  assert.ok(session, JSON.stringify(cookies));
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  assert.deepEqual(offsite, [], 'the page made requests off the loopback hosts');
});
