#!/usr/bin/env node
// End-to-end login callback time through the gateway, for one or more builds
// of the component side by side (e.g. before and after profiles and login
// events), and what an authenticated request writes to KV afterwards.
//
//   node bench/login.mjs --gateway before=/path/a.wasm --gateway now=/path/b.wasm[+hooks|+idle-hooks][@host|@spin] [--logins 30] [--requests 200]
//
// One dev IdP (node-oidc-provider) and one origin serve every gateway; each
// gateway has its own KV state. Logins interleave the gateways (user i on
// each in turn), so drift on a shared machine hits them alike. Per login only
// the callback request (state check, code redemption at the IdP, ID token
// checks, then whatever the build does at sign-in: profile reads and writes,
// outbox writes) is timed, from the client. `+hooks` gives that gateway a
// webhook endpoint (a local receiver answering 204), so every login also
// writes its events to the outbox and delivers them after answering;
// `+idle-hooks` one subscribed to logouts only (logins then only pay for
// the outbox retry scan that login and callback requests run).
//
// Phase `first`: each user's first login (profile created, signup + login
// events); phase `again`: the same users again (profile found and updated).
// Per phase, the host process's CPU time (user + system, /proc/<pid>/stat)
// divided by the logins: what one login costs the gateway in CPU, end to
// end (its three requests: protected page, login start, callback; with
// `+hooks`, the deliveries after answering too), I/O waits excluded.
// Then `--requests` authenticated GETs per gateway with the last session:
// their latency and how many bytes the KV journal grew (the host fsyncs one
// record per write, key_value.rs; reads leave no trace), so a hot path that
// wrote a profile or an event would show here.
//
// Runtime: per gateway with `@host` / `@spin` (side by side in one run),
// else EDGEAUTH_RUNTIME: host (the default; the host binary from
// EDGEAUTH_HOST_BIN or the target dir's debug build) or spin (SPIN_BIN or
// `spin` on PATH; KV is then Spin's SQLite file, whose size moves by pages).

import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { freePort } from '../tests/lib/procs.mjs';
import { startGateway, startIdp, startOrigin } from '../tests/lib/stack.mjs';
import { CookieJar, request } from '../tests/lib/http.mjs';
import { walkIdp } from '../tests/lib/idp-flow.mjs';
import { RUNTIME } from '../tests/lib/runtime.mjs';

function parseArgs(argv) {
  const o = { gateways: [], logins: 30, requests: 200 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--gateway') {
      const m = /^([\w.-]+)=(.+?)(?:\+(hooks|idle-hooks))?(?:@(host|spin))?$/.exec(next());
      if (!m) throw new Error('--gateway NAME=WASM[+hooks|+idle-hooks][@host|@spin]');
      if (!fs.existsSync(m[2])) throw new Error(`--gateway ${m[1]}: no file ${m[2]}`);
      o.gateways.push({ name: m[1], wasm: path.resolve(m[2]), hooks: m[3] ?? null, runtime: m[4] ?? RUNTIME });
    } else if (a === '--logins') o.logins = Number(next());
    else if (a === '--requests') o.requests = Number(next());
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.gateways.length === 0) throw new Error('at least one --gateway NAME=WASM');
  if (!(o.logins >= 1) || !(o.requests >= 1)) throw new Error('--logins and --requests must be at least 1');
  return o;
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { n: s.length, p50: q(0.5), p90: q(0.9), min: s[0], max: s.at(-1), mean: s.reduce((x, y) => x + y, 0) / s.length };
};
const ms = (v) => v.toFixed(2);

const TICKS = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
/**
 * CPU milliseconds (user + system, and of reaped children) used so far by
 * the processes of group `pgid`: the gateway's (startProcess makes it a group
 * leader; `spin up` runs its trigger as a child in the same group).
 */
function cpuMs(pgid) {
  let ticks = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; } // exited meanwhile
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // After the command: state, ppid, pgrp (field 5), ..., utime, stime, cutime, cstime (14–17).
    if (Number(f[2]) === pgid) ticks += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return (ticks * 1000) / TICKS;
}

/** Bytes under `dir` (the gateway's KV journal lives there). */
function bytesUnder(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) n += bytesUnder(p);
    else n += fs.statSync(p, { throwIfNoEntry: false })?.size ?? 0; // SQLite's -journal comes and goes
  }
  return n;
}

/** One login of `user` at gateway `gw`: timings of the callback and the whole flow. */
async function login(gw, user) {
  const jar = new CookieJar();
  const t0 = performance.now();
  const first = await request(`${gw.url}/app/page?x=1`, { jar });
  if (first.status !== 302) throw new Error(`${gw.name}: protected page answered ${first.status}`);
  const toIdp = await request(first.location, { jar });
  if (toIdp.status !== 302) throw new Error(`${gw.name}: /.edgeauth/login answered ${toIdp.status} ${toIdp.body.slice(0, 200)}`);
  const walk = await walkIdp(jar, toIdp.location, { username: user, password: `${user}-pw` });
  if (!walk.location) throw new Error(`${gw.name}: the IdP did not redirect back (${walk.loginError || ''})`);
  const before = bytesUnder(gw.stateDir);
  const t1 = performance.now();
  const cb = await request(walk.location, { jar });
  const t2 = performance.now();
  if (cb.status !== 302 || !cb.setCookies.some((c) => c.startsWith('edgeauth_session'))) {
    throw new Error(`${gw.name}: callback answered ${cb.status} without a session\n${cb.body.slice(0, 300)}`);
  }
  return { callback: t2 - t1, total: t2 - t0, kvBytes: bytesUnder(gw.stateDir) - before, jar };
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const users = Object.fromEntries(Array.from({ length: opts.logins }, (_, i) => [`u${i}`, {
    password: `u${i}-pw`,
    claims: { email: `u${i}@example.com`, email_verified: true, name: `User ${i}`, preferred_username: `u${i}`, groups: ['devs'] },
  }]));
  let received = 0;
  const receiver = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => { received++; res.writeHead(204).end(); });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  const hooksUrl = `http://127.0.0.1:${receiver.address().port}/hooks`;
  const ports = [];
  for (const _ of opts.gateways) ports.push(await freePort('127.0.0.1'));
  const running = [];
  let idp; let origin;
  try {
    [idp, origin] = await Promise.all([
      startIdp({ gatewayUrls: ports.map((p) => `http://127.0.0.1:${p}`), env: { IDP_USERS: JSON.stringify(users) } }),
      startOrigin(),
    ]);
    for (const [i, g] of opts.gateways.entries()) {
      // `idle-hooks`: an endpoint for logouts only, so logins write no
      // outbox entry but still run the retry scan.
      const events = g.hooks === 'idle-hooks' ? ['logout'] : ['*'];
      const vars = g.hooks
        ? { webhooks: JSON.stringify([{ url: hooksUrl, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', events }]) }
        : {};
      const gw = await startGateway({
        port: ports[i], originUrl: origin.url, issuer: idp.issuer, allowedEmailDomains: 'example.com', vars, component: g.wasm,
        // As deployed: no backtraces captured on errors (the test harness turns them on).
        runtime: g.runtime, env: { RUST_BACKTRACE: '0' },
      });
      running.push(gw);
      Object.assign(g, { url: gw.url, stateDir: gw.stateDir, pid: gw.proc.pid });
    }
    // One throw-away login per gateway: provider discovery and JWKS fetched
    // and cached, instances warm (the IdP's `u0` is then not a first login
    // there; the `first` phase starts at u1 for every gateway alike).
    for (const g of opts.gateways) await login(g, 'u0');
    const results = Object.fromEntries(opts.gateways.map((g) => [g.name, { first: [], again: [], kv: { first: [], again: [] }, cpu: {}, jar: null }]));
    for (const phase of ['first', 'again']) {
      const cpu0 = opts.gateways.map((g) => cpuMs(g.pid));
      for (let i = 1; i < opts.logins; i++) {
        for (const g of opts.gateways) {
          const r = await login(g, `u${i}`);
          results[g.name][phase].push(r.callback);
          results[g.name].kv[phase].push(r.kvBytes);
          results[g.name].jar = r.jar;
        }
      }
      // Deliveries run after the answer: let them finish before reading CPU.
      await new Promise((r) => setTimeout(r, 1000));
      opts.gateways.forEach((g, j) => { results[g.name].cpu[phase] = (cpuMs(g.pid) - cpu0[j]) / (opts.logins - 1); });
    }
    const hot = {};
    for (const g of opts.gateways) {
      const { jar } = results[g.name];
      const url = `${g.url}/app/page?x=1`;
      const warm = await request(url, { jar });
      if (warm.status !== 200) throw new Error(`${g.name}: authenticated GET answered ${warm.status}`);
      const before = bytesUnder(g.stateDir);
      const times = [];
      for (let i = 0; i < opts.requests; i++) {
        const t = performance.now();
        const r = await request(url, { jar });
        times.push(performance.now() - t);
        if (r.status !== 200) throw new Error(`${g.name}: authenticated GET answered ${r.status}`);
      }
      hot[g.name] = { ...stats(times), kvBytes: bytesUnder(g.stateDir) - before };
    }
    console.log(`| gateway | phase | logins | callback p50 ms | p90 ms | min–max ms | host CPU ms per login | KV journal bytes per callback (median) |`);
    console.log('|---|---|---:|---:|---:|---:|---:|---:|');
    for (const g of opts.gateways) {
      for (const phase of ['first', 'again']) {
        const s = stats(results[g.name][phase]);
        const kv = stats(results[g.name].kv[phase]);
        console.log(`| ${g.name} | ${phase} | ${s.n} | ${ms(s.p50)} | ${ms(s.p90)} | ${ms(s.min)}–${ms(s.max)} | ${ms(results[g.name].cpu[phase])} | ${kv.p50} |`);
      }
    }
    console.log('');
    console.log(`| gateway | authenticated GETs | p50 ms | p90 ms | KV journal bytes written by all of them |`);
    console.log('|---|---:|---:|---:|---:|');
    for (const g of opts.gateways) {
      const h = hot[g.name];
      console.log(`| ${g.name} | ${h.n} | ${ms(h.p50)} | ${ms(h.p90)} | ${h.kvBytes} |`);
    }
    console.log(`\nwebhook deliveries received: ${received}`);
  } finally {
    await Promise.all([...running.map((g) => g.stop()), idp?.stop(), origin?.stop()]);
    receiver.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
