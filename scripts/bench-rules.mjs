// Driver for scripts/bench-rules: starts the host with two tenants (a 1-rule
// and a 3-rule chain), uploads signed artifacts, and has the component time
// its own rule calls through the admin dry-run endpoint.

import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { freePort, startProcess } from '../tests/lib/procs.mjs';

const { values: a } = parseArgs({
  options: {
    host: { type: 'string' }, component: { type: 'string' }, baseline: { type: 'string' },
    'wasm-dir': { type: 'string' }, iterations: { type: 'string', default: '200' }, 'no-js': { type: 'boolean' },
  },
});
const iterations = Number(a.iterations);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-bench-rules-'));
const cli = (args, env = {}) => execFileSync(a.host, args, { env: { ...process.env, ...env }, encoding: 'utf8' });

const [secret, pub] = cli(['rule', 'keygen', '--kid', 'bench']).split('\n').filter((l) => l && !l.startsWith('#'));
const rules = [
  ['email-domain', 'rule_email_domain.wasm', { domains: ['example.com'] }],
  ['group-roles', 'rule_group_roles.wasm', { roles: { admins: ['admin'], devs: ['developer'] }, header: 'x-roles' }],
  ['profile', 'rule_progressive_profile.wasm', { field: 'company', form_url: '/profile-form' }],
];
const built = {};
for (const [name, file] of rules) {
  built[name] = path.join(tmp, `${name}.rule`);
  const t = Date.now();
  cli(['rule', 'build', path.join(a['wasm-dir'], file), '--name', name, '-o', built[name]], { EDGEAUTH_RULE_SIGNING_KEY: secret });
  console.error(`built ${name} in ${Date.now() - t} ms (${fs.statSync(built[name]).size} bytes)`);
}
// The JavaScript versions (componentize-js, signed with the cached test key;
// tests/lib/js-rules.mjs), unless --no-js.
let js;
if (!a['no-js']) {
  process.env.EDGEAUTH_HOST_BIN = a.host;
  const { jsRules } = await import('../tests/lib/js-rules.mjs');
  const t = Date.now();
  js = await jsRules();
  for (const l of js.log) console.error(l);
  console.error(`JS rules ready in ${Date.now() - t} ms`);
  rules.push(['email-domain-js', null, rules[0][2]], ['profile-js', null, rules[2][2]]);
  Object.assign(built, js.rule);
}
const chain = (names) => names.map((n) => {
  const [, , config] = rules.find(([r]) => r === n);
  return { name: n, config, ...(n === 'group-roles' ? { headers: ['x-roles'] } : {}) };
});
const token = crypto.randomBytes(16).toString('hex');
const port = await freePort();
const vars = {
  public_url: `http://127.0.0.1:${port}`, origin_url: 'http://127.0.0.1:9', oidc_issuer: 'http://127.0.0.2:9',
  oidc_client_secret: 'x', session_keys: `s1:${crypto.randomBytes(32).toString('base64url')}`,
  assertion_keys: `a1:ed25519:${crypto.randomBytes(32).toString('base64url')}`,
  // Two tenants (two host spellings of the port): uploads go only to tenants the gateway serves.
  tenants: JSON.stringify({
    one: { public_url: `http://127.0.0.1:${port}` }, three: { public_url: `http://localhost:${port}` },
    // The dry run names its tenant in the path: these hosts are never used.
    ...(js ? { js: { public_url: 'http://js.bench.test' } } : {}),
  }),
  rules: JSON.stringify({ tenants: {
    one: { chain: chain(['email-domain']) }, three: { chain: chain(['email-domain', 'group-roles', 'profile']) },
    // Rust and JS versions of two rules, one after the other in one chain.
    ...(js ? { js: { chain: chain(['email-domain', 'email-domain-js', 'profile', 'profile-js']) } } : {}),
  } }),
  rule_keys: js ? `${pub},${js.key.public}` : pub, admin_token: token,
};
const env = Object.fromEntries(Object.entries(vars).map(([k, v]) => [`SPIN_VARIABLE_${k.toUpperCase()}`, v]));
const { proc } = await startProcess('bench-gateway', a.host, ['up', '--manifest', 'spin.toml', '--listen', `127.0.0.1:${port}`,
  '--component', a.component, '--state-dir', path.join(tmp, 'state')], { env, ready: /listening on/, timeoutMs: 300000 });
const gw = `http://127.0.0.1:${port}`;
try {
  const uploads = [['one', ['email-domain']], ['three', ['email-domain', 'group-roles', 'profile']]];
  if (js) uploads.push(['js', ['email-domain', 'email-domain-js', 'profile', 'profile-js']]);
  for (const [tenant, names] of uploads) {
    for (const n of names) cli(['rule', 'upload', built[n], '--gateway', gw, '--tenant', tenant], { EDGEAUTH_ADMIN_TOKEN: token });
  }
  const event = JSON.stringify({
    user: { sub: 'alice', email: 'alice@example.com', email_verified: true, groups: ['admins', 'devs'], user_metadata: { company: 'Acme' } },
    transaction: { login_count: 3 },
  });
  const run = async (tenant) => {
    const r = await fetch(`${gw}/.edgeauth/admin/rules/${tenant}/_run?iterations=${iterations}`, {
      method: 'POST', body: event, headers: { authorization: `Bearer ${token}` },
    });
    if (r.status !== 200) throw new Error(`${tenant}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  await run('three'); // warm-up (page faults, KV file load)
  const one = await run('one');
  const three = await run('three');
  const us = (s) => `median ${s.median} us (min ${s.min}, mean ${s.mean}, max ${s.max})`;
  console.log(`\nRule calls inside the gateway component (wasm32-wasip2 + embedded wasmtime 48 / pulley32), ${iterations} iterations, fresh engine per iteration:`);
  console.log(`  engine + linker creation (once per request): ${us(one.engine_us)}`);
  console.log(`  deployment record read (once per sign-in, before the chain): ${us(three.deployment_us)}`);
  for (const r of three.rules) {
    console.log(`  ${r.rule.padEnd(13)} load ${r.load_us.median} us (KV read ${r.read_us.median} + check ${r.verify_us.median} + deserialize ${r.deserialize_us.median})`
      + ` + instantiate ${r.instantiate_us.median} us + call ${r.call_us.median} us = ${us(r.total_us)}; fuel ${r.fuel}`);
  }
  console.log(`  1-rule chain (email-domain), engine included: ${us(one.chain_us)}`);
  console.log(`  3-rule chain (email-domain, group-roles, profile), engine included: ${us(three.chain_us)}`);
  if (js) {
    // Fewer iterations: a JS rule costs tens of ms.
    const jsIterations = Math.max(1, Math.min(iterations, Number(process.env.BENCH_JS_ITERATIONS || 30)));
    const r = await fetch(`${gw}/.edgeauth/admin/rules/js/_run?iterations=${jsIterations}`, {
      method: 'POST', body: event, headers: { authorization: `Bearer ${token}` },
    });
    if (r.status !== 200) throw new Error(`js: ${r.status} ${await r.text()}`);
    const res = await r.json();
    for (const x of res.results) if (x.failure) throw new Error(`${x.rule} failed: ${x.detail}`);
    console.log(`\nRust and JavaScript versions of the same rules, same run, same event, ${jsIterations} iterations:`);
    for (const x of res.rules) {
      const size = fs.statSync(built[x.rule]).size;
      console.log(`  ${x.rule.padEnd(15)} artifact ${(size / 1048576).toFixed(2)} MiB: load ${x.load_us.median} us (KV read ${x.read_us.median} + check ${x.verify_us.median} + deserialize ${x.deserialize_us.median})`
        + ` + instantiate ${x.instantiate_us.median} us + call ${x.call_us.median} us = ${us(x.total_us)}; fuel ${x.fuel}`);
    }
  }
  const size = fs.statSync(a.component).size;
  if (a.baseline && fs.existsSync(a.baseline)) {
    const base = fs.statSync(a.baseline).size;
    console.log(`\nComponent size: ${size} bytes with rules, ${base} bytes without (--no-default-features): +${size - base} bytes (${((size - base) / 1048576).toFixed(2)} MiB)`);
  } else {
    console.log(`\nComponent size: ${size} bytes with rules (no baseline build; run without EDGEAUTH_SKIP_BUILD)`);
  }
} finally {
  await proc.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
}
