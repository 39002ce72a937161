// Class 11 — a rule that allocates without bound, spread over several linear
// memories. A component may hold several memories (one per core module, or
// several in one module); the tenant's `memory_bytes` caps the rule's total,
// not each memory. The hostile rule grows three memories by 3 MiB each: every
// one under an 8 MiB cap, 9 MiB together. Through the running gateway (the
// embedded pulley32 runtime): with an 8 MiB cap the sign-in fails closed
// with the memory error and an audit line; with 16 MiB the same rule allows
// it (so the failure is the total, not a broken rule).
//
// Needs the rules built (the module borrows the world's type information
// from rule_hostile.wasm): scripts/test does it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, setCookie, isClearing } from '../lib/http.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';
import { HOST_BIN, startStack, stopStack } from '../lib/stack.mjs';
import { SESSION, show, login, loginOk } from '../lib/gateway-flow.mjs';
import { manyMemoriesRule } from '../lib/many-memories-rule.mjs';

const MIB = 1 << 20;
const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const HOSTILE = path.join(TARGET, 'wasm32-unknown-unknown', 'release', 'rule_hostile.wasm');
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);

async function cli(args, env = {}) {
  return (await run(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' })).stdout;
}

let stack; let tmp; let gwCapped; let gwRoomy;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-memories-'));
  const [secret, pub] = (await cli(['rule', 'keygen', '--kid', 'test1'])).split('\n').filter((l) => l && !l.startsWith('#'));
  const module = path.join(tmp, 'memories.wasm');
  fs.writeFileSync(module, manyMemoriesRule({ extra: 3, growBytes: 3 * MIB, typesFrom: HOSTILE }));
  const artifact = path.join(tmp, 'h-memories.rule');
  await cli(['rule', 'build', module, '--name', 'h-memories', '-o', artifact], { EDGEAUTH_RULE_SIGNING_KEY: secret });
  const vars = (memoryBytes) => ({
    rules: JSON.stringify({ tenants: { default: { chain: [{ name: 'h-memories', memory_bytes: memoryBytes }] } } }),
    rule_keys: pub,
    admin_token: ADMIN_TOKEN,
  });
  stack = await startStack({ gateways: 2, gatewayOptions: { vars: vars(8 * MIB) } });
  gwCapped = stack.gateway;
  gwRoomy = await stack.startGateway({ vars: vars(16 * MIB) });
  for (const gw of [gwCapped, gwRoomy]) {
    await cli(['rule', 'upload', artifact, '--gateway', gw.url], { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN });
  }
});

after(async () => {
  await stopStack(stack);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('memories each under the cap but over it together fail the sign-in closed', async () => {
  const bad = await login(gwCapped, stack.idp, new CookieJar(), '/', { rd: '/memories' });
  assert.equal(bad.callback.status, 500, `9 MiB over four memories passed an 8 MiB cap\n${show(bad.callback)}`);
  assert.match(bad.callback.body, /Sign-in failed/);
  assert.match(bad.callback.body, /h-memories/);
  assert.match(bad.callback.body, /memory cap/);
  assert.ok(!setCookie(bad.callback, SESSION) || isClearing(setCookie(bad.callback, SESSION)), 'no session for a failed rule');
  await waitFor(() => /"event":"login-failed","kind":"out-of-memory","rule":"h-memories"/.test(gwCapped.proc.output),
    { what: 'out-of-memory audit line' });
});

test('the same rule within a cap above its total allows the sign-in', async () => {
  const ok = await loginOk(gwRoomy, stack.idp, new CookieJar(), '/', { rd: '/memories' });
  assert.equal(new URL(ok.callback.location).pathname, '/memories');
});
