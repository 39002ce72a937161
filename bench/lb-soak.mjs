// Soak through a load balancer: three gateway instances sharing one Redis
// behind nginx (round robin, one public URL; tests/lib/balancer.mjs), `wrk`
// at a fixed number of connections for the whole run with a signed-in
// session, the resident memory of every instance (its whole process group),
// of Redis and of nginx sampled over time. Not pass/fail: it reports the
// errors (wrk's non-2xx/3xx answers and socket errors, and requests that did
// not reach the origin) and whether memory stays flat. Run it through
// scripts/bench-lb-soak; see bench/README.md.
//
//   node bench/lb-soak.mjs [--long S] [--conns N] [--sample S] [--out FILE]
//   EDGEAUTH_RUNTIME=host|spin   which runtime serves the instances (default host)

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startProcess, freePort } from '../tests/lib/procs.mjs';
import { RUNTIME } from '../tests/lib/runtime.mjs';
import { startGateway, sessionKey, assertionKey, HOST_BIN } from '../tests/lib/stack.mjs';
import { redisMissing, startRedis } from '../tests/lib/redis.mjs';
import { nginxMissing, startBalancer } from '../tests/lib/balancer.mjs';
import { startHostileIdp } from '../tests/security/lib/hostile-idp.mjs';
import { validSignIn } from '../tests/security/lib/sec.mjs';
import { CookieJar } from '../tests/lib/http.mjs';
import { SESSION, sessionValue } from '../tests/lib/gateway-flow.mjs';

const opts = { long: 60, conns: 32, sample: 10, out: null };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const next = () => process.argv[++i];
  if (a === '--long') opts.long = Number(next());
  else if (a === '--conns') opts.conns = Number(next());
  else if (a === '--sample') opts.sample = Number(next());
  else if (a === '--out') opts.out = next();
  else { console.error(`unknown option ${a}`); process.exit(2); }
}
for (const [k, v] of Object.entries({ long: opts.long, conns: opts.conns, sample: opts.sample })) {
  if (!(Number.isFinite(v) && v > 0)) { console.error(`--${k} takes a positive number`); process.exit(2); }
}
const missing = redisMissing ?? nginxMissing;
if (missing) { console.error(`bench-lb-soak: ${missing}`); process.exit(1); }
const ORIGIN_BIN = path.join(process.env.EDGEAUTH_BENCH_BIN_DIR || path.dirname(HOST_BIN), 'bench-origin');
if (!fs.existsSync(ORIGIN_BIN)) { console.error(`bench-lb-soak: missing ${ORIGIN_BIN} (the debug build of bench/tools)`); process.exit(1); }
const PATH = '/app/page?x=1';

/** Resident memory (KiB) of every process in `pid`'s process group. */
function groupRssKb(pid) {
  let total = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      // Fields after the command name: state ppid pgrp ...
      const pgrp = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
      if (pgrp !== pid) continue;
      const m = fs.readFileSync(`/proc/${d}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
      total += m ? Number(m[1]) : 0;
    } catch { /* gone meanwhile */ }
  }
  return total;
}

const mib = (kb) => (kb / 1024).toFixed(1);

async function main() {
  const started = [];
  const stopAll = async () => { for (const s of started.reverse()) await s.stop?.(); };
  try {
    const redis = await startRedis();
    started.push({ stop: () => redis.close() });
    const { proc: origin, match } = await startProcess('bench-origin', ORIGIN_BIN, ['127.0.0.1:0'], { ready: /bench origin listening on (http:\/\/\S+)/ });
    started.push(origin);
    const originUrl = match[1];
    const op = await startHostileIdp();
    started.push(op);
    const t = op.tenant('soak');
    const lbPort = await freePort('127.0.0.1');
    const common = {
      originUrl, issuer: t.issuer, runtimeConfig: redis.runtimeConfig,
      sessionKeys: [sessionKey()], assertionKeys: [assertionKey()],
      vars: { public_url: `http://127.0.0.1:${lbPort}` },
    };
    const gateways = [];
    for (let i = 0; i < 3; i++) {
      const g = await startGateway(common);
      gateways.push(g);
      started.push(g);
    }
    const lb = await startBalancer({ port: lbPort, upstreams: gateways.map((g) => new URL(g.url).host) });
    started.push(lb);
    const jar = new CookieJar();
    const s = await validSignIn(lb, t, { jar, claims: { sub: 'soaker', email: 'soaker@example.com' } });
    if (s.cb.status !== 302 || !sessionValue(jar)) throw new Error(`sign-in through the balancer failed: ${s.cb.status}`);
    const cookie = `${SESSION}=${sessionValue(jar)}`;
    const check = await fetch(`${lb.url}${PATH}`, { headers: { Cookie: cookie } });
    if (check.status !== 200 || (await check.text()).length !== 1024) throw new Error(`the session does not reach the origin: ${check.status}`);
    const count = async () => Number(await (await fetch(`${originUrl}/__bench/count`)).text());

    const procs = {
      ...Object.fromEntries(gateways.map((g, i) => [`instance ${'ABC'[i]}`, g.proc.pid])),
      redis: redis.proc.pid, nginx: lb.proc.pid,
    };
    const samples = [];
    const sample = (s) => samples.push({ s, rss: Object.fromEntries(Object.entries(procs).map(([k, pid]) => [k, groupRssKb(pid)])) });
    sample(0);
    const before = await count();
    const t0 = Date.now();
    const timer = setInterval(() => sample(Math.round((Date.now() - t0) / 1000)), opts.sample * 1000);
    // wrk prints (block-buffered) only at the end: its summary is the ready line.
    const { proc: wrk } = await startProcess('wrk', 'wrk', ['-t2', `-c${opts.conns}`, `-d${opts.long}s`, '--latency', '--timeout', '10s',
      '-H', `Cookie: ${cookie}`, `${lb.url}${PATH}`], { ready: /Transfer\/sec/, timeoutMs: (opts.long + 60) * 1000 })
      .finally(() => clearInterval(timer));
    const exit = await wrk.exitPromise;
    sample(Math.round((Date.now() - t0) / 1000));
    const reached = (await count()) - before;
    const out = wrk.output;
    if (exit.code !== 0) throw new Error(`wrk failed (${exit.code}):\n${out}`);
    const num = (re) => Number(out.match(re)?.[1] ?? 0);
    const requests = num(/(\d+) requests in/);
    const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
    const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/)?.slice(1).map(Number) ?? [0, 0, 0, 0];
    const rps = num(/Requests\/sec:\s+([\d.]+)/);
    const lat = (p) => out.match(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm'))?.[1] ?? '?';
    const perInstance = lb.accessLog().reduce((m, l) => { m[l.upstream] = (m[l.upstream] ?? 0) + 1; return m; }, {});

    const lines = [];
    const keys = Object.keys(procs);
    lines.push(`Soak through nginx (round robin) over three instances under **${RUNTIME === 'spin' ? 'Spin' : `the host (${path.relative(ROOT, HOST_BIN)})`}** sharing one Redis: `
      + `\`wrk -t2 -c${opts.conns} -d${opts.long}s\` \`GET ${PATH}\` with a session (revocation check in Redis, identity headers, signed assertion) → 1 KiB from the native origin. `
      + `${os.cpus().length} cores (${os.cpus()[0]?.model?.trim()}), ${execFileSync('uname', ['-sr']).toString().trim()}.`);
    lines.push('');
    lines.push(`- **Requests**: ${requests} (${rps.toFixed(0)}/s), latency p50 ${lat(50)}, p99 ${lat(99)}; per instance (nginx log): ${Object.values(perInstance).join(' / ')}.`);
    lines.push(`- **Errors**: ${non2xx} non-2xx/3xx, socket errors connect ${sock[0]}, read ${sock[1]}, write ${sock[2]}, timeout ${sock[3]}; `
      + `origin reached ${reached} times (${reached >= requests ? 'every request' : `${requests - reached} fewer than answered`}).`);
    const first = samples[0].rss; const firstLoaded = samples[1]?.rss ?? first; const last = samples.at(-1).rss;
    lines.push(`- **Memory** (RSS, MiB; first sample under load → last): ${keys.map((k) => `${k} ${mib(firstLoaded[k])} → ${mib(last[k])}`).join(', ')} (idle before load: ${keys.map((k) => mib(first[k])).join(' / ')}).`);
    lines.push('');
    lines.push(`| s | ${keys.join(' | ')} |`);
    lines.push(`|---|${keys.map(() => '---').join('|')}|`);
    for (const x of samples) lines.push(`| ${x.s} | ${keys.map((k) => mib(x.rss[k])).join(' | ')} |`);
    const text = `${lines.join('\n')}\n`;
    process.stdout.write(text);
    if (opts.out) fs.writeFileSync(opts.out, text);
  } finally {
    await stopAll();
  }
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
