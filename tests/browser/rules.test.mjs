// Tenant rules in a real browser: the profiling form a rule redirects to is
// filled in and submitted, the sign-in resumes and the origin page shows the
// rule's claim; an unverified person gets the rule's deny page.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';
import { ROOT, WORK } from '../lib/procs.mjs';
import { HOST_BIN, startStack, stopStack } from '../lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(WORK, 'screenshots');
const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const run = promisify(execFile);
const cli = async (args, env = {}) => (await run(HOST_BIN, args, { env: { ...process.env, ...env } })).stdout;

let stack; let context; let profile; let tmp; let gw;

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-browser-rules-'));
  const [secret, pub] = (await cli(['rule', 'keygen', '--kid', 'b1'])).split('\n').filter((l) => l && !l.startsWith('#'));
  const rules = [['email_domain', 'email-domain'], ['progressive_profile', 'profile'], ['group_roles', 'group-roles']];
  for (const [crate, name] of rules) {
    await cli(['rule', 'build', wasm(crate), '--name', name, '-o', path.join(tmp, `${name}.rule`)], { EDGEAUTH_RULE_SIGNING_KEY: secret });
  }
  const token = 'browser-admin-token';
  stack = await startStack({
    gatewayOptions: {
      vars: {
        rules: JSON.stringify({ tenants: { default: { chain: [
          { name: 'email-domain', config: { domains: ['example.com'] } },
          { name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 1 } },
          { name: 'group-roles', config: { roles: { admins: ['admin'] } } },
        ] } } }),
        rule_keys: pub,
        admin_token: token,
        routes: JSON.stringify([{ path: '/profile-form', public: true }]),
      },
    },
  });
  gw = stack.gateway;
  for (const [, name] of rules) {
    await cli(['rule', 'upload', path.join(tmp, `${name}.rule`), '--gateway', gw.url], { EDGEAUTH_ADMIN_TOKEN: token });
  }
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
  for (const d of [profile, tmp]) if (d) fs.rmSync(d, { recursive: true, force: true });
});

async function signIn(page, user, target) {
  await page.goto(target);
  await page.waitForSelector('#username');
  await page.fill('#username', user);
  await page.fill('#password', `${user}-pw`);
  await page.click('#submit');
}

test('profiling form: the rule asks, the browser answers, the sign-in resumes with the rules\' claims', async () => {
  const page = await context.newPage();
  const target = `${gw.url}/welcome?from=browser`;
  await signIn(page, 'alice', target);
  await page.waitForSelector('#profile');
  assert.equal(new URL(page.url()).pathname, '/profile-form');
  await page.screenshot({ path: path.join(SHOTS, 'rules-profile-form.png') });
  await page.fill('#field', 'Acme Corp');
  await Promise.all([
    page.waitForURL((u) => u.href === target, { timeout: 30000 }),
    page.click('#save'),
  ]);
  await page.waitForSelector('#who');
  const decoded = JSON.parse(await page.textContent('#assertion'));
  assert.deepEqual(decoded.payload['https://example.com/roles'], ['admin']);
  assert.equal(decoded.payload.sub, 'alice');
  await page.screenshot({ path: path.join(SHOTS, 'rules-origin.png'), fullPage: true });
  await page.close();
});

test('deny page: an unverified email is refused by the tenant rule', async () => {
  await context.clearCookies(); // a different person: no IdP or gateway session
  const page = await context.newPage();
  await signIn(page, 'bob', `${gw.url}/anything`);
  await page.waitForSelector('h1');
  assert.equal(await page.textContent('h1'), 'Access denied');
  assert.match(await page.textContent('body'), /email-domain.*a verified email address is required/s);
  await page.screenshot({ path: path.join(SHOTS, 'rules-deny.png') });
  await page.close();
});
