// Class 2 — header trust, every spelling of every name the gateway or a rule
// sets, through the running gateway. One gateway serves two tenants: `acme`
// (a rule that sets `x-tenant-plan` at sign-in) and `globex` (no rules). A
// client sends the rule's header and the gateway's identity headers in every
// spelling a server could read as the same name: each `_`/`-` mix at every
// separator position, in several letter cases, duplicated, with a trailing
// dot, and (separately) with invalid name syntax. The recording origin must
// never receive a client's value, under any name, in either tenant, with or
// without a session; the rule's own value arrives once, under its own name.
//
// Needs the rules built (scripts/test does it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, rawRequest } from '../lib/http.mjs';
import { ROOT, freePort } from '../lib/procs.mjs';
import { HOST_BIN, startIdp, startOrigin, startGateway } from '../lib/stack.mjs';
import { loginOk, sessionValue } from '../lib/gateway-flow.mjs';
import { Failures, pool, processLog } from './lib/sec.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const run = promisify(execFile);
const cli = async (args, env = {}) =>
  (await run(HOST_BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8' })).stdout;

const RULE_HEADER = 'X-Tenant-Plan';
const IDENTITY = ['X-Auth-Request-User', 'X-Auth-Request-Email', 'X-Auth-Request-Groups', 'X-Edgeauth-Assertion',
  'X-Forwarded-Email', 'X-Forwarded-Access-Token', 'Remote-User', 'X-Remote-User', 'X-Auth-Request-Preferred-Username'];
const PUBLIC = [{ path: '/public/', public: true }];

let idp; let origin; let gw; let tmp;
let acme; let globex; // { url, host } of each tenant on the one gateway
const sess = {};

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-spellings-'));
  const port = await freePort('127.0.0.1');
  acme = { url: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}` };
  globex = { url: `http://localhost:${port}`, host: `localhost:${port}` };
  [idp, origin] = await Promise.all([startIdp({ gatewayUrls: [acme.url, globex.url] }), startOrigin()]);
  const lines = (await cli(['rule', 'keygen', '--kid', 'spell'])).split('\n').filter((l) => l && !l.startsWith('#'));
  const plan = path.join(tmp, 'plan.rule');
  await cli(['rule', 'build', wasm('group_roles'), '--name', 'plan', '-o', plan], { EDGEAUTH_RULE_SIGNING_KEY: lines[0] });
  gw = await startGateway({
    port, originUrl: origin.url, issuer: idp.issuer,
    vars: {
      tenants: JSON.stringify({
        acme: { public_url: acme.url, routes: PUBLIC },
        globex: { public_url: globex.url, routes: PUBLIC },
      }),
      rules: JSON.stringify({
        tenants: {
          acme: {
            chain: [{
              name: 'plan',
              config: { roles: { admins: ['gold'], users: ['basic'] }, header: RULE_HEADER.toLowerCase() },
              headers: [RULE_HEADER.toLowerCase()],
            }],
          },
        },
      }),
      rule_keys: lines[1],
      admin_token: ADMIN_TOKEN,
    },
  });
  await cli(['rule', 'upload', plan, '--gateway', acme.url, '--tenant', 'acme'], { EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN });
  for (const [name, t] of [['acme', acme], ['globex', globex]]) {
    for (const user of ['alice', 'bob']) {
      const jar = new CookieJar();
      await loginOk({ url: t.url }, idp, jar, '/', { username: user });
      sess[`${name}-${user}`] = jar.get(new URL(t.url).hostname, 'edgeauth_session')?.value ?? sessionValue(jar);
      assert.ok(sess[`${name}-${user}`], `${user} has a session at ${name}`);
    }
  }
});

after(async () => {
  await Promise.all([gw?.stop(), idp?.stop(), origin?.stop()]);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

// ------------------------------------------------------------ spellings
/** Every `_`/`-` choice at every separator, each in four letter cases. */
function spellings(name) {
  const parts = name.split('-');
  const out = new Set();
  for (let mask = 0; mask < 1 << (parts.length - 1); mask++) {
    let s = parts[0];
    for (let i = 1; i < parts.length; i++) s += ((mask >> (i - 1)) & 1 ? '_' : '-') + parts[i];
    const alternating = [...s.toLowerCase()].map((c, i) => (i % 2 ? c.toUpperCase() : c)).join('');
    for (const v of [s, s.toLowerCase(), s.toUpperCase(), alternating]) out.add(v);
  }
  // A dot where a dash was, or after the name: valid token characters that
  // some frameworks fold like `_`.
  out.add(name.replace(/-/g, '.'));
  out.add(`${name}.`);
  out.add(`${name.replace(/-/g, '_')}.`);
  return [...out];
}

let n = 0;
/** [name, value] lines: each spelling once, the exact name twice more (duplicates). */
function spoofLines(names) {
  const out = [];
  for (const name of names) {
    for (const s of spellings(name)) out.push([s, `SPOOF${++n}`]);
    out.push([name, `SPOOF${++n}`], [name.toLowerCase(), `SPOOF${++n}, gold`]);
  }
  return out;
}

const batches = (list, size) => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

function originLines(rec) {
  const out = [];
  for (let i = 0; i < rec.rawHeaders.length; i += 2) out.push([rec.rawHeaders[i], rec.rawHeaders[i + 1]]);
  return out;
}

/** Sends `lines` in batches to `tenant` at `target`; [batch, response, origin record]. */
async function send(tenant, lines, { target, cookie, size = 40 }) {
  const tagged = batches(lines, size).map((b) => ({ b, tag: `s${++n}` }));
  return pool(tagged, 4, async ({ b, tag }) => {
    const headers = [['Host', tenant.host], ['Accept', 'text/html'], ...(cookie ? [['Cookie', `edgeauth_session=${cookie}`]] : []), ...b];
    const r = await rawRequest(tenant.url, { target: `${target}?tag=${tag}`, headers });
    const rec = (await origin.requests()).find((x) => x.url.includes(`tag=${tag}`));
    return [b, r, rec];
  });
}

const canon = (k) => k.toLowerCase().replace(/[^a-z0-9]/g, '-').replace(/^-+|-+$/g, '');

function checkBatch(f, label, [b, r, rec], { want = 200, plan } = {}) {
  f.check(r.status === want, `${label}: status ${r.status}, want ${want}`);
  if (want !== 200) { f.check(!rec, `${label}: reached the origin`); return; }
  f.check(Boolean(rec), `${label}: the origin saw nothing`);
  if (!rec) return;
  const lns = originLines(rec);
  const spoofed = lns.filter(([, v]) => /SPOOF/.test(v));
  f.check(spoofed.length === 0, `${label}: client values reached the origin: ${JSON.stringify(spoofed.slice(0, 6))} (sent ${b.length} lines)`);
  const planLines = lns.filter(([k]) => canon(k) === 'x-tenant-plan');
  if (plan) f.check(planLines.length === 1 && planLines[0][0].toLowerCase() === 'x-tenant-plan' && planLines[0][1] === plan,
    `${label}: the rule's header must arrive once as x-tenant-plan: ${plan}, got ${JSON.stringify(planLines)}`);
  else f.check(planLines.length === 0, `${label}: a plan header without the rule: ${JSON.stringify(planLines)}`);
}

// ------------------------------------------------------------ tests
test('a rule\'s header: no client spelling reaches the origin, in the rule\'s tenant or any other', async () => {
  const lines = spoofLines([RULE_HEADER]);
  assert.ok(lines.some(([k]) => k === 'X_Tenant-Plan') && lines.some(([k]) => k === 'x-tenant_plan'), 'mixed spellings are sent');
  const f = new Failures('rule-header spellings');
  const cases = [
    ['acme alice /page', acme, '/page', sess['acme-alice'], 'gold'],
    ['acme bob /page', acme, '/page', sess['acme-bob'], 'basic'],
    ['acme alice /public/p', acme, '/public/p', sess['acme-alice'], 'gold'],
    ['acme anonymous /public/p', acme, '/public/p', null, null],
    ['globex alice /page', globex, '/page', sess['globex-alice'], null],
    ['globex anonymous /public/p', globex, '/public/p', null, null],
  ];
  for (const [label, tenant, target, cookie, plan] of cases) {
    for (const res of await send(tenant, lines, { target, cookie })) checkBatch(f, label, res, { plan });
  }
  // One spelling per request, so no stripped neighbour can hide a survivor.
  await pool(spellings(RULE_HEADER), 4, async (s) => {
    for (const [label, tenant, cookie, plan] of [['acme', acme, sess['acme-bob'], 'basic'], ['globex', globex, null, null]]) {
      const [res] = await send(tenant, [[s, `SPOOF${++n}`]], { target: '/public/one', cookie });
      checkBatch(f, `${label} ${s}`, res, { plan });
    }
  });
  f.done();
  console.log(`# ${spellings(RULE_HEADER).length} spellings of ${RULE_HEADER}, ${lines.length} lines per request set`);
});

test('identity headers: no client spelling reaches the origin; the gateway\'s own arrive once', async () => {
  const lines = spoofLines(IDENTITY);
  const f = new Failures('identity-header spellings');
  for (const [label, tenant, target, cookie] of [['acme alice', acme, '/id', sess['acme-alice']], ['globex bob', globex, '/id', sess['globex-bob']],
    ['acme anonymous public', acme, '/public/id', null], ['globex anonymous public', globex, '/public/id', null]]) {
    for (const res of await send(tenant, lines, { target, cookie })) {
      checkBatch(f, label, res, { plan: label === 'acme alice' ? 'gold' : null });
      const rec = res[2];
      if (!rec) continue;
      const own = originLines(rec).filter(([k]) => ['x-auth-request-user', 'x-edgeauth-assertion'].includes(canon(k)));
      if (cookie) {
        f.check(own.length === 2 && own.every(([k]) => k === k.toLowerCase() && !k.includes('_')), `${label}: own identity headers ${JSON.stringify(own)}`);
      } else {
        f.check(own.length === 0, `${label}: identity without a session: ${JSON.stringify(own)}`);
      }
    }
  }
  f.done();
});

test('invalid header names (space or tab before the colon, leading space) are refused or stripped, never forwarded', async () => {
  const f = new Failures('invalid names');
  const seen = [];
  for (const name of [`${RULE_HEADER} `, `${RULE_HEADER}\t`, ` ${RULE_HEADER}`, 'X-Auth-Request-User ', 'X_Auth-Request-User\t', 'Remote-User ']) {
    for (const [tenant, cookie] of [[acme, sess['acme-bob']], [globex, null]]) {
      const tag = `inv${++n}`;
      const headers = [['Host', tenant.host], ...(cookie ? [['Cookie', `edgeauth_session=${cookie}`]] : []), [name, `SPOOF${tag}`]];
      const r = await rawRequest(tenant.url, { target: `/public/inv?tag=${tag}`, headers }).catch((e) => ({ status: 0, error: e.message }));
      seen.push(`${JSON.stringify(name)} -> ${r.status}`);
      f.check(r.status === 400 || r.status === 200, `${JSON.stringify(name)}: ${r.status} ${r.error || ''}`);
      const rec = (await origin.requests()).find((x) => x.url.includes(`tag=${tag}`));
      f.check(!rec || !JSON.stringify(rec.rawHeaders).includes('SPOOF'), `${JSON.stringify(name)}: reached the origin as ${JSON.stringify(rec?.rawHeaders)}`);
    }
  }
  f.done();
  console.log(`# ${seen.join('; ')}`);
});

test('no panic in the gateway log', () => {
  assert.doesNotMatch(processLog(gw.proc), /panicked/);
});
