// Versioned rule deployments and per-rule execution logs (plugins/README.md,
// "Versions and deployments"), through the real host or Spin and the CLI:
// upload -> version, deploy, a sign-in running the deployed versions, a new
// deploy, rollback in one command, gc removing only unreferenced versions,
// the logs of the last runs with the audit line's correlation ids, and
// sign-ins running concurrently with repeated deploys each running one
// consistent chain, concurrent deploys of different rules of one tenant
// (one gateway, and two sharing Redis) each landing, and `rollback --to N`.
//
// Two rules, `a` and `b`, each with two versions built from different
// example crates, so which version ran shows at the origin:
//   deployment "1": a = group-roles (claim https://t.example/a), b = email-domain (no claim)
//   deployment "2": a = email-domain (no claim), b = group-roles (claim https://t.example/b)
// A sign-in under "1" carries only claim a, under "2" only claim b; a mix of
// the two deployments would carry both or neither. A third gateway puts a
// pausing rule (progressive profiling) before `a`: a paused sign-in resumes
// with the versions it started with, or is refused once they are collected.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CookieJar, request } from '../lib/http.mjs';
import { ROOT, waitFor } from '../lib/procs.mjs';
import { edgeauthCli, startGateway, startStack, stopStack } from '../lib/stack.mjs';
import { login, loginOk, verifyAssertion, originSaw, show } from '../lib/gateway-flow.mjs';
import { readKv } from '../lib/kv.mjs';
import { redisMissing, startRedis } from '../lib/redis.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const wasm = (crate) => path.join(TARGET, 'wasm32-unknown-unknown', 'release', `rule_${crate}.wasm`);
const ADMIN_TOKEN = crypto.randomBytes(18).toString('base64url');
const CLAIM_A = 'https://t.example/a';
const CLAIM_B = 'https://t.example/b';

let stack; let gw; let tmp; let key;
const v = {}; // 'a1' -> version id
const files = {}; // 'a1' -> artifact path

const { cli, cliFails } = edgeauthCli({ EDGEAUTH_ADMIN_TOKEN: ADMIN_TOKEN, EDGEAUTH_ACTOR: 'ci-deployer' });

const at = () => ['--gateway', gw.url];
const jsonOf = (out) => JSON.parse(out.slice(out.indexOf('{')));
const versionOf = (out) => out.match(/^version: ([0-9a-f]{16})$/m)?.[1];
const digest = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

async function build(id, crate, name) {
  const out = path.join(tmp, `${id}.rule`);
  await cli(['rule', 'build', wasm(crate), '--name', name, '-o', out], { EDGEAUTH_RULE_SIGNING_KEY: key.secret });
  files[id] = out;
}

let n = 0;
/** Signs alice in and returns the rule claims the origin got: 'a', 'b', 'ab' or ''. */
async function claimsOfSignIn() {
  const p = `/dep/${++n}`;
  const jar = new CookieJar();
  await loginOk(gw, stack.idp, jar, p);
  const r = await request(`${gw.url}${p}`, { jar });
  assert.equal(r.status, 200);
  const seen = (await originSaw(stack.origin, p)).pop();
  const { payload } = await verifyAssertion(gw, stack.origin.url, seen.headers['x-edgeauth-assertion']);
  return `${payload[CLAIM_A] ? 'a' : ''}${payload[CLAIM_B] ? 'b' : ''}`;
}

const config = (claim) => ({ domains: ['example.com'], roles: { admins: ['on'] }, claim });

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-deploy-'));
  const lines = (await cli(['rule', 'keygen', '--kid', 'dep1'])).split('\n').filter((l) => l && !l.startsWith('#'));
  key = { secret: lines[0], public: lines[1] };
  await build('a1', 'group_roles', 'a');
  await build('a2', 'email_domain', 'a');
  await build('a3', 'hostile', 'a'); // never deployed: collected by gc
  await build('b1', 'email_domain', 'b');
  await build('b2', 'group_roles', 'b');
  stack = await startStack({ gateways: 3 }); // the stack's own, one with rules, one for pauses
  gw = await stack.startGateway({
    vars: {
      rules: JSON.stringify({ tenants: { default: { chain: [{ name: 'a', config: config(CLAIM_A) }, { name: 'b', config: config(CLAIM_B) }] } } }),
      rule_keys: key.public,
      admin_token: ADMIN_TOKEN,
    },
  });
});

after(async () => {
  await stopStack(stack);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('upload creates an immutable, content-addressed version and prints it; versions lists digest, signer, uploader, time and size', async () => {
  for (const id of ['a1', 'a2', 'a3', 'b1', 'b2']) {
    const out = await cli(['rule', 'upload', files[id], '--no-deploy', ...at()]);
    v[id] = versionOf(out);
    assert.equal(v[id], digest(files[id]).slice(0, 16), out);
    assert.match(out, /\(new\) uploaded to tenant `default`; deploy it with `edgeauth rule deploy /);
  }
  // The same bytes again: the same version, not rewritten.
  const stored = readKv(gw.stateDir)[`rule-version:default:a:${v.a1}`];
  const again = await cli(['rule', 'upload', files.a1, '--no-deploy', ...at()]);
  assert.match(again, /already stored/);
  assert.equal(versionOf(again), v.a1);
  assert.equal(readKv(gw.stateDir)[`rule-version:default:a:${v.a1}`], stored, 'the stored version is untouched');

  const listed = jsonOf(await cli(['rule', 'versions', 'a', ...at()]));
  assert.deepEqual(listed.versions.map((x) => x.version), [v.a1, v.a2, v.a3], 'each once, in upload order');
  const first = listed.versions[0];
  assert.equal(first.sha256, digest(files.a1));
  assert.equal(first.kid, 'dep1');
  assert.equal(first.uploader, 'ci-deployer');
  assert.equal(first.bytes, fs.statSync(files.a1).size);
  assert.ok(Math.abs(first.uploaded_at - Date.now() / 1000) < 600, `upload time ${first.uploaded_at}`);
  assert.equal(listed.active, null, 'nothing deployed yet');
});

test('deploy runs the named versions; a new deploy switches; rollback in one command restores the previous chain', async () => {
  const first = await cli(['rule', 'deploy', `a@${v.a1}`, `b@${v.b1}`, ...at()]);
  assert.match(first, new RegExp(`deployed, deployment \\d+: a@${v.a1} b@${v.b1}`));
  assert.equal(await claimsOfSignIn(), 'a');

  const second = jsonOf(await cli(['rule', 'deploy', `a@${v.a2}`, `b@${v.b2}`, ...at()]));
  assert.equal(second.changed, true);
  assert.equal(await claimsOfSignIn(), 'b');
  // Deploying what is active changes nothing (safe to repeat in CI).
  assert.match(await cli(['rule', 'deploy', `b@${v.b2}`, ...at()]), /already deployed/);

  const back = await cli(['rule', 'rollback', ...at()]);
  assert.match(back, new RegExp(`rolled back, deployment \\d+: a@${v.a1} b@${v.b1}`));
  assert.equal(await claimsOfSignIn(), 'a', 'the previous behaviour is back');
  const shown = jsonOf(await cli(['rule', 'deployment', ...at()]));
  assert.equal(shown.deployment.rollback_of, second.deployment.id);
  assert.equal(shown.deployment.by, 'ci-deployer');
  // The admin listing names the running versions.
  const list = JSON.parse((await request(`${gw.url}/.edgeauth/admin/rules/default`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).body);
  assert.deepEqual(list.chain.map((r) => [r.name, r.version]), [['a', v.a1], ['b', v.b1]]);

  // Refusals name what exists.
  assert.match(await cliFails(['rule', 'deploy', `c@${v.a1}`, ...at()]), /refused \(HTTP 409\): rule `c` is in no chain entry of tenant `default` loaded from uploads; those are `a`, `b`/);
  assert.match(await cliFails(['rule', 'deploy', `a@${v.b1}`, ...at()]), new RegExp(`refused \\(HTTP 404\\): rule \`a\` of tenant \`default\` has no version \`${v.b1}\`; its versions are \`${v.a1}\``));
  assert.match(await cliFails(['rule', 'deploy', 'a@latest', ...at()]), /refused \(HTTP 400\): version `latest` of `a` must be 16 lowercase hex digits/);
});

test('sign-ins concurrent with repeated deploys each run one consistent chain', async () => {
  const one = [`a@${v.a1}`, `b@${v.b1}`];
  const two = [`a@${v.a2}`, `b@${v.b2}`];
  let signInsDone = false;
  let deploys = 0;
  const deployer = (async () => {
    while (!signInsDone) {
      await cli(['rule', 'deploy', ...(deploys % 2 ? one : two), ...at()]);
      deploys += 1;
    }
  })();
  const seen = [];
  try {
    for (let round = 0; round < 4; round += 1) {
      seen.push(...await Promise.all(Array.from({ length: 5 }, () => claimsOfSignIn())));
    }
  } finally {
    signInsDone = true;
    await deployer;
  }
  assert.ok(deploys >= 2, `deploys during the sign-ins: ${deploys}`);
  console.log(`# ${seen.length} sign-ins during ${deploys} deploys: ${seen.filter((c) => c === 'a').length} under deployment 1, ${seen.filter((c) => c === 'b').length} under 2`);
  for (const claims of seen) assert.ok(claims === 'a' || claims === 'b', `a sign-in ran a mix of deployments: claims "${claims}" (all: ${seen.join(',')})`);
});

test('gc deletes only the versions no kept deployment uses', async () => {
  // Kept: the active deployment and the previous ones; a3 was never deployed.
  const out = await cli(['rule', 'gc', ...at()]);
  assert.match(out, /1 unused version\(s\) deleted/);
  assert.deepEqual(jsonOf(out).deleted, { a: [v.a3] });
  const listed = jsonOf(await cli(['rule', 'versions', 'a', ...at()]));
  assert.deepEqual(listed.versions.map((x) => x.version), [v.a1, v.a2]);
  const kv = readKv(gw.stateDir);
  assert.equal(kv[`rule-version:default:a:${v.a3}`], undefined, 'its artifact is deleted');
  for (const id of ['a1', 'a2', 'b1', 'b2']) assert.ok(kv[`rule-version:default:${id[0]}:${v[id]}`], `${id} is kept`);
  assert.match(await cliFails(['rule', 'deploy', `a@${v.a3}`, ...at()]), /HTTP 404\): rule `a` of tenant `default` has no version/);
  // Nothing else to collect, and sign-ins still run.
  assert.deepEqual(jsonOf(await cli(['rule', 'gc', ...at()])).deleted, {});
  assert.ok(['a', 'b'].includes(await claimsOfSignIn()));
});

test('logs: the last runs of a rule, bounded, with the audit line\'s correlation ids, outcome, duration and fuel', async () => {
  // More sign-ins than the ring holds have run by now.
  assert.ok(n > 20, `sign-ins so far: ${n}`);
  const audits = () => gw.proc.output.split('\n').filter((l) => l.startsWith('edgeauth-audit: '))
    .map((l) => JSON.parse(l.slice('edgeauth-audit: '.length)));
  const last = await claimsOfSignIn();
  const cid = audits().filter((x) => x.event === 'rule' && x.rule === 'a').pop()?.correlation_id;
  assert.ok(cid);
  await waitFor(() => audits().some((x) => x.event === 'rule-runs-recorded' && x.correlation_id === cid), { what: 'the runs recorded' });

  const threeOut = await cli(['rule', 'logs', 'a', '--limit', '3', ...at()]);
  const three = jsonOf(threeOut);
  // One line per run for people, newest first, then the JSON.
  const lines = threeOut.split('\n');
  assert.equal(lines[0], 'rule `a` of tenant `default`: last 3 run(s), newest first');
  assert.match(lines[1], new RegExp(`^  #\\d+ .* ok .* version [0-9a-f]{16} .* ${cid}$`));
  assert.equal(three.runs.length, 3);
  const newest = three.runs[0];
  assert.equal(newest.correlation_id, cid, 'the newest run is the last sign-in, under its audit line\'s id');
  assert.equal(newest.outcome, 'ok');
  assert.equal(newest.version, last === 'a' ? v.a1 : v.a2);
  assert.ok(newest.fuel > 0 && newest.duration_us > 0, JSON.stringify(newest));
  const audit = audits().find((x) => x.event === 'rule' && x.rule === 'a' && x.correlation_id === cid);
  assert.equal(newest.fuel, audit.fuel);
  assert.equal(newest.duration_us, audit.load_us + audit.instantiate_us + audit.call_us);

  const all = jsonOf(await cli(['rule', 'logs', 'a', ...at()]));
  assert.equal(all.runs.length, all.ring, 'the last N runs, no more');
  assert.equal(all.runs[0].n - all.runs[all.runs.length - 1].n, all.ring - 1);
  const ids = new Set(audits().filter((x) => x.event === 'rule' && x.rule === 'a').map((x) => x.correlation_id));
  for (const r of all.runs) assert.ok(ids.has(r.correlation_id), `run ${r.n}: ${r.correlation_id} has no audit line`);
  const slots = Object.keys(readKv(gw.stateDir)).filter((k) => k.startsWith('rule-log:default:a:'));
  assert.equal(slots.length, all.ring, 'bounded in KV: one slot per kept run');

  // What a log write costs a sign-in (closing figures in plugins/README.md).
  // In order: 3 sign-ins one at a time, 20 concurrent with deploys, 2 alone.
  const costs = audits().filter((x) => x.event === 'rule-runs-recorded').map((x) => x.write_us);
  const median = (xs) => [...xs].sort((p, q) => p - q)[xs.length >> 1];
  const alone = [...costs.slice(0, 3), ...costs.slice(-2)];
  console.log(`# rule log write per sign-in (2 rules, 4 KV writes): alone median ${median(alone)} us (${alone.join(' ')}); under load median ${median(costs.slice(3, -2))} us`);
});

test('a paused sign-in resumes with the versions it started with, and is refused clearly once they are collected', async () => {
  const pv = {};
  const pf = {};
  for (const [id, crate, name] of [['p', 'progressive_profile', 'profile'], ['a1', 'group_roles', 'a'], ['a2', 'email_domain', 'a'],
    ['a3', 'crm_lead', 'a'], ['a4', 'hostile', 'a']]) {
    pf[id] = path.join(tmp, `pause-${id}.rule`);
    await cli(['rule', 'build', wasm(crate), '--name', name, '-o', pf[id]], { EDGEAUTH_RULE_SIGNING_KEY: key.secret });
  }
  const pgw = await stack.startGateway({
    vars: {
      rules: JSON.stringify({ tenants: { default: { chain: [
        { name: 'profile', config: { field: 'company', form_url: '/profile-form', from_login: 1 } },
        { name: 'a', config: config(CLAIM_A) },
      ] } } }),
      routes: JSON.stringify([{ path: '/profile-form', public: true }]),
      rule_keys: key.public,
      admin_token: ADMIN_TOKEN,
    },
  });
  try {
    const on = ['--gateway', pgw.url];
    for (const id of Object.keys(pf)) pv[id] = versionOf(await cli(['rule', 'upload', pf[id], '--no-deploy', ...on]));
    await cli(['rule', 'deploy', `profile@${pv.p}`, `a@${pv.a1}`, ...on]);
    const pause = async (username) => {
      const jar = new CookieJar();
      const l = await login(pgw, stack.idp, jar, `/paused-${username}`, { username });
      assert.equal(l.callback.status, 302, show(l.callback));
      const form = new URL(l.callback.location);
      assert.equal(form.pathname, '/profile-form', show(l.callback));
      return { jar, state: form.searchParams.get('state') };
    };
    const resume = ({ jar, state }) => request(`${pgw.url}/.edgeauth/continue?state=${encodeURIComponent(state)}&company=Acme`, { jar });

    // Paused under a1; a2 (no claim) is deployed meanwhile; the sign-in still runs a1.
    const alice = await pause('alice');
    await cli(['rule', 'deploy', `a@${pv.a2}`, ...on]);
    const done = await resume(alice);
    assert.equal(done.status, 302, show(done));
    assert.equal((await request(`${pgw.url}/paused-alice`, { jar: alice.jar })).status, 200);
    const seen = (await originSaw(stack.origin, '/paused-alice')).pop();
    const { payload } = await verifyAssertion(pgw, stack.origin.url, seen.headers['x-edgeauth-assertion']);
    assert.deepEqual(payload[CLAIM_A], ['on'], 'the version deployed when the sign-in started ran');

    // Paused under a2; four deployments later a2 is no longer kept, gc collects it: refused with a clear page.
    const bob = await pause('bob');
    for (const id of ['a1', 'a3', 'a4', 'a1']) await cli(['rule', 'deploy', `a@${pv[id]}`, ...on]);
    assert.deepEqual(jsonOf(await cli(['rule', 'gc', ...on])).deleted, { a: [pv.a2] });
    const refused = await resume(bob);
    assert.equal(refused.status, 400, show(refused));
    assert.match(refused.body, /Sign-in rules changed while you were away; sign in again\./);
    await waitFor(() => /"detail":"a version the sign-in started with is gone","event":"resume-refused"/.test(pgw.proc.output), { what: 'audit line of the refusal' });
  } finally {
    await pgw.stop();
  }
});

// Ten rules `c0`..`c9` in one tenant's chain, each with one uploaded version;
// ten deploys fired at once, each switching one rule. Each read-modify-write
// of the deployment record must see the others' (compare-and-swap), so the
// k-th deploy to land names exactly k of the rules, and the last names all.
const RULES = Array.from({ length: 10 }, (_, i) => `c${i}`);
const manyVars = () => ({
  rules: JSON.stringify({ tenants: { default: { chain: RULES.map((name) => ({ name, config: config(CLAIM_A) })) } } }),
  rule_keys: key.public,
  admin_token: ADMIN_TOKEN,
});
const cv = {}; // 'c0' -> version id (the same for every gateway: content-addressed)

async function buildMany() {
  if (Object.keys(cv).length) return;
  await Promise.all(RULES.map((name) => build(name, 'email_domain', name)));
  for (const name of RULES) cv[name] = digest(files[name]).slice(0, 16);
}

async function uploadMany(url) {
  for (const name of RULES) assert.equal(versionOf(await cli(['rule', 'upload', files[name], '--no-deploy', '--gateway', url])), cv[name]);
}

/** Fires one `rule deploy cK@v` per rule at once, through `urls` in turn; checks nothing was lost. */
async function deployAllAtOnce(urls, label) {
  const t0 = Date.now();
  const outs = await Promise.all(RULES.map((name, i) => cli(['rule', 'deploy', `${name}@${cv[name]}`, '--gateway', urls[i % urls.length]])
    .then(jsonOf, (e) => ({ failed: `${e.stdout}${e.stderr}` }))));
  const failed = outs.filter((o) => o.failed);
  assert.deepEqual(failed, [], 'every deploy succeeds');
  const ids = outs.map((o) => o.deployment.id);
  assert.equal(new Set(ids).size, RULES.length, `distinct deployment numbers: ${ids}`);
  // Linearizable: the k-th write names k rules (one per deploy that landed before it).
  const sizes = outs.map((o) => Object.keys(o.deployment.versions).length).sort((p, q) => p - q);
  assert.deepEqual(sizes, RULES.map((_, i) => i + 1), `rules named by each deployment written: ${sizes}`);
  const shown = jsonOf(await cli(['rule', 'deployment', '--gateway', urls[0]]));
  assert.deepEqual(shown.deployment.versions, cv, 'the final deployment names every deploy\'s version');
  // The history: the kept previous deployments are the ones written just before, newest first.
  const bySize = new Map(outs.map((o) => [Object.keys(o.deployment.versions).length, o.deployment]));
  assert.deepEqual(shown.deployment, bySize.get(10));
  assert.deepEqual(shown.previous, [9, 8, 7].map((k) => bySize.get(k)));
  console.log(`# ${label}: ${RULES.length} concurrent deploys in ${Date.now() - t0} ms, deployments ${ids.sort((p, q) => p - q).join(' ')}`);
  return outs;
}

const audits = (g) => g.proc.output.split('\n').filter((l) => l.startsWith('edgeauth-audit: '))
  .map((l) => JSON.parse(l.slice('edgeauth-audit: '.length)));

test('concurrent deploys of different rules of one tenant all land, each in the history with its own number', async () => {
  await buildMany();
  const g = await startGateway({ originUrl: stack.origin.url, issuer: stack.idp.issuer, vars: manyVars() });
  try {
    await uploadMany(g.url);
    const outs = await deployAllAtOnce([g.url], 'one gateway');
    const deployed = audits(g).filter((x) => x.event === 'rules-deployed');
    assert.deepEqual(deployed.map((x) => x.deployment).sort(), outs.map((o) => o.deployment.id).sort(), 'one audit line per deployment');

    // rollback --to N: back to the deployment that named 8 rules, as a new deployment.
    const shown = jsonOf(await cli(['rule', 'deployment', '--gateway', g.url]));
    const target = shown.previous[1];
    const back = await cli(['rule', 'rollback', '--to', String(target.id), '--gateway', g.url]);
    assert.match(back, new RegExp(`rolled back to deployment ${target.id}, deployment \\d+: `), back);
    const after = jsonOf(await cli(['rule', 'deployment', '--gateway', g.url]));
    assert.deepEqual(after.deployment.versions, target.versions);
    assert.equal(after.deployment.rollback_of, shown.deployment.id);
    assert.equal(after.deployment.restores, target.id);
    assert.deepEqual(after.previous.map((d) => d.id), [shown.deployment.id, shown.previous[0].id, shown.previous[2].id],
      'the restored one is active again, not also kept as a previous one');
    // Unknown numbers are refused, naming the ones there are.
    const kept = [after.deployment.id, ...after.previous.map((d) => d.id)];
    assert.match(await cliFails(['rule', 'rollback', '--to', '99999', '--gateway', g.url]),
      new RegExp(`refused \\(HTTP 404\\): tenant \`default\` has no deployment 99999 to roll back to; its deployments are ${kept.map((id) => `${id}`).join(', ')}`));
    assert.match(await cliFails(['rule', 'rollback', '--to', 'x', '--gateway', g.url]), /--to takes a deployment number/);
    // The active one: nothing to do.
    assert.match(await cli(['rule', 'rollback', '--to', String(after.deployment.id), '--gateway', g.url]), /already active/);
    // The one-step rollback still goes back to the one before.
    const one = jsonOf(await cli(['rule', 'rollback', '--gateway', g.url]));
    assert.deepEqual(one.deployment.versions, shown.deployment.versions);
  } finally {
    await g.stop();
  }
});

test('concurrent deploys through two instances sharing Redis all land', { skip: redisMissing ?? false }, async () => {
  await buildMany();
  const redis = await startRedis();
  const common = { originUrl: stack.origin.url, issuer: stack.idp.issuer, vars: manyVars(), runtimeConfig: redis.runtimeConfig };
  let gws = [];
  try {
    gws = await Promise.all([startGateway(common), startGateway(common)]);
    await uploadMany(gws[0].url);
    await deployAllAtOnce(gws.map((g) => g.url), 'two instances, one Redis');
  } finally {
    await Promise.all(gws.map((g) => g.stop()));
    await redis.close();
  }
});
