// edgeauth benchmark: gateway overhead against the floor of the architecture
// and against a Node peer, side by side in one run on one machine.
// Run it through scripts/bench, which builds what this needs; see bench/README.md.
//
//   node bench/run.mjs [--smoke] [--duration S] [--rounds N] [--conns 1,32]
//                      [--long S] [--no-peer] [--out FILE] [--hold] [--kv-keys N]
//                      [--tenants N] [--runtimes host,spin] [--health]
//                      [--gateway-wasm NAME=PATH] [--floor-wasm NAME=PATH]
//                      [--spin-runtime-config FILE] [--spin-variables env|static]
//                      [--floor-reads N[,N...]]

import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const WORK = path.join(ROOT, 'tests', '.work', 'bench');
const IDP_HOST = '127.0.0.2';

// ---------------------------------------------------------------- options
const opts = {
  smoke: false, hold: false, duration: 10, rounds: 3, conns: [1, 32], long: 0, peer: true, out: null, kvKeys: 0, tenants: 0,
  runtimes: ['host'], health: false, variants: [], floorVariants: [], floorReads: [], spinRuntimeConfig: null, spinVariables: 'env',
  bin: process.env.EDGEAUTH_BENCH_BIN_DIR || path.join(TARGET, 'fast'),
  hostArgs: (process.env.EDGEAUTH_BENCH_HOST_ARGS || '').split(' ').filter(Boolean),
};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  const next = () => process.argv[++i];
  if (a === '--smoke') opts.smoke = true;
  else if (a === '--duration') opts.duration = Number(next());
  else if (a === '--rounds') opts.rounds = Number(next());
  else if (a === '--conns') opts.conns = next().split(',').map(Number);
  else if (a === '--long') opts.long = Number(next());
  else if (a === '--no-peer') opts.peer = false;
  else if (a === '--hold') opts.hold = true;
  else if (a === '--out') opts.out = next();
  else if (a === '--kv-keys') opts.kvKeys = Number(next());
  else if (a === '--tenants') opts.tenants = Number(next());
  else if (a === '--runtimes') opts.runtimes = next().split(',').filter(Boolean);
  else if (a === '--health') opts.health = true;
  else if (a === '--floor-reads') {
    // The floor that also reads N keys from KV per request: what any gateway
    // checking revocation in the store per request cannot beat.
    opts.floorReads = next().split(',').map(Number);
    if (!opts.floorReads.every((n) => Number.isInteger(n) && n >= 1 && n <= 8)) { console.error('--floor-reads N[,N...] with 1 <= N <= 8'); process.exit(2); }
  }
  else if (a === '--gateway-wasm' || a === '--floor-wasm') {
    // `+static`: under Spin only, its variables from a static provider (--spin-variables).
    const m = /^([\w.-]+)=(.+?)(\+static)?$/.exec(next() ?? '');
    if (!m) { console.error(`${a} NAME=PATH[+static]`); process.exit(2); }
    (a === '--gateway-wasm' ? opts.variants : opts.floorVariants)
      .push({ name: m[1], wasm: path.resolve(m[2]), staticVariables: Boolean(m[3]) });
  } else if (a === '--spin-runtime-config') opts.spinRuntimeConfig = path.resolve(next());
  else if (a === '--spin-variables') {
    opts.spinVariables = next();
    if (!['env', 'static'].includes(opts.spinVariables)) { console.error('--spin-variables env|static'); process.exit(2); }
  }
  else { console.error(`unknown option ${a}`); process.exit(2); }
}
if (opts.smoke) Object.assign(opts, { duration: 1, rounds: 1, conns: [1, 4], long: 0 });
for (const rt of opts.runtimes) {
  if (!['host', 'spin'].includes(rt)) { console.error(`--runtimes: ${rt} is not host or spin`); process.exit(2); }
}
if ((opts.kvKeys > 0 || opts.tenants > 0) && !opts.runtimes.includes('host')) {
  console.error('--kv-keys and --tenants need the host runtime (they prepare its KV files)'); process.exit(2);
}
const PEER_DIR = path.join(ROOT, 'bench', 'peer');
if (opts.peer && !fs.existsSync(path.join(PEER_DIR, 'node_modules', 'express-openid-connect'))) {
  if (!opts.smoke) throw new Error('bench/peer/node_modules missing: run `npm ci --prefix bench/peer` (scripts/bench does)');
  console.error('bench: peer skipped (bench/peer/node_modules missing)');
  opts.peer = false;
}

const FILES = {
  host: process.env.EDGEAUTH_HOST_BIN || path.join(opts.bin, 'edgeauth'),
  gatewayWasm: process.env.EDGEAUTH_COMPONENT || path.join(TARGET, 'wasm32-wasip2', 'release', 'edgeauth_component.wasm'),
  floorWasm: path.join(TARGET, 'wasm32-wasip2', 'release', 'edgeauth_bench_passthrough.wasm'),
  origin: path.join(opts.bin, 'bench-origin'),
  core: path.join(opts.bin, 'bench-core'),
};
for (const [k, f] of Object.entries(FILES)) {
  if (k === 'host' && !opts.runtimes.includes('host')) continue;
  if (!fs.existsSync(f)) throw new Error(`bench: missing ${k} build output ${f}; run scripts/bench`);
}
for (const v of [...opts.variants, ...opts.floorVariants]) {
  if (!fs.existsSync(v.wasm)) throw new Error(`bench: --gateway-wasm/--floor-wasm ${v.name}: no file ${v.wasm}`);
}

// The harness's IdP walker and cookie jar; loaded after the env is settled.
const { freePort } = await import('../tests/lib/procs.mjs');
const { CookieJar, request } = await import('../tests/lib/http.mjs');
const { walkIdp } = await import('../tests/lib/idp-flow.mjs');
const { findSpin } = await import('../tests/lib/runtime.mjs');
const SPIN_BIN = opts.runtimes.includes('spin') ? findSpin() : null;
if (opts.runtimes.includes('spin') && !SPIN_BIN) {
  throw new Error('bench: --runtimes spin needs the Spin CLI on PATH (or SPIN_BIN)');
}

// ---------------------------------------------------------------- processes
fs.mkdirSync(WORK, { recursive: true });
const live = new Set();
const killGroup = (pid, sig) => { try { process.kill(-pid, sig); } catch { /* gone */ } };
process.on('exit', () => { for (const p of live) killGroup(p.pid, 'SIGKILL'); });
for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => process.exit(130));
let setpriv;
try { execFileSync('setpriv', ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore' }); setpriv = true; } catch { setpriv = false; }

/**
 * Start a service with its output going straight to a log file (never through
 * this process, which would compete for CPU under load); ready once a line of
 * the log matches `ready`.
 */
async function service(name, cmd, args, { env = {}, ready, timeoutMs = 120000 } = {}) {
  const log = path.join(WORK, `${name}.log`);
  const fd = fs.openSync(log, 'w');
  const [file, argv] = setpriv ? ['setpriv', ['--pdeathsig', 'KILL', '--', cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, { cwd: ROOT, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  const proc = { name, pid: child.pid, log, exited: null };
  live.add(proc);
  child.on('exit', (code, signal) => { proc.exited = code ?? signal; live.delete(proc); });
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = fs.readFileSync(log, 'utf8').match(ready);
    if (m) return { ...proc, match: m, stop: () => killGroup(child.pid, 'SIGTERM') };
    if (proc.exited !== null || Date.now() > end) {
      throw new Error(`${name} ${proc.exited !== null ? `exited (${proc.exited})` : 'not ready'}; log ${log}:\n${fs.readFileSync(log, 'utf8').slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function rssKiB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'))?.[1]);
  return { rss: get('VmRSS'), hwm: get('VmHWM') };
}

const b64url = (n) => Buffer.from(Array.from({ length: n }, () => Math.floor(Math.random() * 256))).toString('base64url');

/**
 * A state directory whose KV store already holds `n` live entries of the
 * gateway's own kinds (revocations, cached assertions, rule user records),
 * as a busy deployment's store would: what a request must not pay for.
 */
function stateDirWithKeys(n) {
  const stateDir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-bench-'));
  fs.mkdirSync(path.join(stateDir, 'kv'));
  const expires = Math.floor(Date.now() / 1000) + 86400;
  const kinds = [
    (i) => [`revoked-session:default:${b64url(18)}${i}`, `${expires}`],
    (i) => [`assertion:default:${b64url(18)}${i}`, `${expires} ${b64url(200)}`],
    (i) => [`rule-user:default:${b64url(32)}${i}`, `${expires} {"logins":3,"app":{"plan":"pro"},"user":{}}`],
  ];
  const data = {};
  for (let i = 0; i < n; i++) {
    const [k, v] = kinds[i % kinds.length](i);
    data[k] = Buffer.from(v).toString('base64');
  }
  fs.writeFileSync(path.join(stateDir, 'kv', 'default.json'), JSON.stringify(data));
  return stateDir;
}

/**
 * `manifest` served by `runtime`: the edgeauth host, or `spin up` with a copy
 * of the manifest whose (only) component `source` is `wasm`'s absolute path
 * (Spin takes it relative to the manifest). Variables through
 * SPIN_VARIABLE_*, KV in a fresh state directory (Spin: its SQLite file;
 * `runtimeConfig`: a Spin runtime config file).
 */
async function startHost(name, { manifest, wasm, port, vars, stateDir: given, runtime = 'host', runtimeConfig = null, staticVars = opts.spinVariables === 'static' }) {
  const stateDir = given ?? fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-bench-'));
  const env = Object.fromEntries(Object.entries(vars).map(([k, v]) => [`SPIN_VARIABLE_${k.toUpperCase()}`, v]));
  if (runtime === 'spin') {
    const text = fs.readFileSync(manifest, 'utf8');
    const source = /^source\s*=\s*"[^"\n]*"\s*$/m;
    if (!source.test(text)) throw new Error(`${manifest}: no component source to point at ${wasm}`);
    const file = path.join(stateDir, 'spin.toml');
    fs.writeFileSync(file, text.replace(source, `source = ${JSON.stringify(wasm)}`));
    const args = ['up', '--from', file, '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir];
    let rc = runtimeConfig ? fs.readFileSync(runtimeConfig, 'utf8') : null;
    if (staticVars) {
      // Every variable of the manifest from a static provider, none from the environment.
      rc = `${rc ?? ''}\n${staticVariables(text, vars)}`;
    }
    if (rc !== null) {
      const rcFile = path.join(stateDir, 'runtime-config.toml');
      fs.writeFileSync(rcFile, rc);
      args.push('--runtime-config-file', rcFile);
    }
    const p = await service(name, SPIN_BIN, args, { env, ready: /^Serving (http:\/\/\S+)/m });
    return { ...p, url: `http://127.0.0.1:${port}`, runtime };
  }
  const p = await service(name, FILES.host, [
    'up', '--manifest', manifest, '--listen', `127.0.0.1:${port}`, '--component', wasm, '--state-dir', stateDir,
    ...opts.hostArgs,
  ], { env, ready: /edgeauth host listening on (http:\/\/\S+)/ });
  return { ...p, url: `http://127.0.0.1:${port}`, runtime };
}

const TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
/** CPU time (user + system, µs) used so far by the processes of group `pgid`. */
function groupCpuUs(pgid) {
  let ticks = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1e6) / TICKS;
}

/**
 * A Spin runtime config section that gives every variable of the manifest
 * (its `[variables]` defaults, overridden by `vars`) from a static provider,
 * so Spin never asks its environment provider (one blocking lookup per
 * variable; see bench/README.md).
 */
function staticVariables(manifestText, vars) {
  const section = manifestText.match(/^\[variables\]\n([\s\S]*?)(?=^\[)/m)?.[1] ?? '';
  const values = {};
  for (const line of section.split('\n')) {
    const m = line.match(/^(\w+)\s*=\s*\{(.*)\}\s*$/);
    if (!m) continue;
    const d = m[2].match(/default\s*=\s*"((?:[^"\\]|\\.)*)"/);
    if (d) values[m[1]] = JSON.parse(`"${d[1]}"`);
  }
  Object.assign(values, vars);
  const entries = Object.entries(values).map(([k, v]) => `${k} = ${JSON.stringify(v)}`);
  return `[[variables_provider]]\ntype = "static"\nvalues = { ${entries.join(', ')} }\n`;
}

/** Resident memory of a process group (`spin up` serves from a child process). */
function groupRssKiB(pgid) {
  let rss = 0; let hwm = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat;
    try { stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8'); } catch { continue; }
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) continue;
    try { const r = rssKiB(Number(d)); rss += r.rss || 0; hwm += r.hwm || 0; } catch { /* exited */ }
  }
  return { rss, hwm };
}

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

// ---------------------------------------------------------------- load
function spinVersion() {
  try { return execFileSync(SPIN_BIN, ['--version'], { encoding: 'utf8' }).trim(); } catch { return 'spin'; }
}

function wrkVersion() {
  let out = '';
  try { out = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: 'pipe' }); } catch (e) { out = String(e.stdout || ''); }
  const v = out.match(/wrk\s+(?:\S*\/)?(\d+\.\d+\.\d+)/);
  return v ? `wrk ${v[1]}` : 'wrk';
}

function toMs(v, unit) {
  return Number(v) * ({ us: 1e-3, ms: 1, s: 1000, m: 60000 }[unit] ?? NaN);
}

/** The floor target that reads `n` KV keys per request (--floor-reads). */
const readsLabel = (n) => `floor reading ${n} KV key${n > 1 ? 's' : ''}`;

/** One wrk run; returns { rps, p50, p99, requests, errors } (latencies in ms). */
function wrk(url, conns, seconds, cookie, headers = {}) {
  const args = ['-t1', `-c${conns}`, `-d${seconds}s`, '--latency', '--timeout', '5s'];
  if (cookie) args.push('-H', `Cookie: ${cookie}`);
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  args.push(url);
  const out = execFileSync('wrk', args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  const lat = (pct) => {
    const m = out.match(new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm'));
    if (!m) throw new Error(`no ${pct}% latency in wrk output:\n${out}`);
    return toMs(m[1], m[2]);
  };
  const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const requests = Number(out.match(/(\d+) requests in/)?.[1]);
  const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  return { rps, p50: lat(50), p99: lat(99), requests, errors, raw: out };
}

async function originCount(originUrl) {
  return Number(await (await fetch(`${originUrl}/__bench/count`)).text());
}

// ---------------------------------------------------------------- stats
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const n = s.length; return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2; };
const stat = (xs) => ({ med: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length });
const f = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const fi = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const cell = (s, fmt) => `${fmt(s.med)} (${fmt(s.min)}–${fmt(s.max)})`;

// ---------------------------------------------------------------- main
async function main() {
  const started = new Date();
  console.error(`bench: ${opts.smoke ? 'smoke, ' : ''}${opts.rounds} round(s) × ${opts.duration} s at ${opts.conns.join(',')} connection(s)${opts.long ? `, long run ${opts.long} s` : ''}`);

  // Core timings first, while nothing else is running.
  const core = JSON.parse(execFileSync(FILES.core, ['--budget-ms', opts.smoke ? '20' : '400'], { encoding: 'utf8' }));

  const origin = await service('origin', FILES.origin, ['127.0.0.1:0'], { ready: /bench origin listening on (http:\/\/\S+)/ });
  const originUrl = origin.match[1];
  // Per runtime: the floor, the gateway and any --gateway-wasm builds.
  const rts = {};
  for (const rt of opts.runtimes) {
    rts[rt] = { floorPort: await freePort(), gwPort: await freePort(), variants: [], floors: [] };
    // A `+static` build is a Spin-only variant (the host has no variable providers).
    for (const v of opts.variants) if (rt === 'spin' || !v.staticVariables) rts[rt].variants.push({ ...v, port: await freePort() });
    for (const v of opts.floorVariants) if (rt === 'spin' || !v.staticVariables) rts[rt].floors.push({ ...v, port: await freePort() });
  }
  const [peerPort, kvPort, t1Port, tnPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const urlOf = (port) => `http://127.0.0.1:${port}`;
  const peerUrl = urlOf(peerPort);
  const kvUrl = urlOf(kvPort);
  const t1Url = urlOf(t1Port);
  const tnUrl = urlOf(tnPort);
  const gatewayUrls = Object.values(rts).flatMap((r) => [r.gwPort, ...r.variants.map((v) => v.port)]).map(urlOf);
  const idpPort = await freePort(IDP_HOST);
  const idp = await service('idp', process.execPath, [path.join(ROOT, 'tests/idp/idp.mjs')], {
    env: { IDP_HOST, IDP_PORT: String(idpPort), GATEWAY_URL: [...gatewayUrls, peerUrl, kvUrl, t1Url, tnUrl].join(',') },
    ready: /idp listening on (http:\/\/\S+)/,
  });
  const issuer = idp.match[1];

  const gatewayVars = (url) => ({
    public_url: url, origin_url: originUrl, oidc_issuer: issuer,
    oidc_client_id: 'edgeauth', oidc_client_secret: 'edgeauth-dev-secret',
    session_keys: `s1:${b64url(32)}`,
    assertion_keys: `a1:ed25519:${b64url(32)}`,
    allowed_email_domains: 'example.com',
  });
  const manifest = path.join(ROOT, 'spin.toml');
  const spinRc = (runtime) => (runtime === 'spin' ? opts.spinRuntimeConfig : null);
  for (const [rt, r] of Object.entries(rts)) {
    r.floor = await startHost(`floor-${rt}`, {
      manifest: path.join(ROOT, 'bench', 'passthrough', 'spin.toml'), wasm: FILES.floorWasm, port: r.floorPort,
      vars: { origin_url: originUrl }, runtime: rt,
    });
    r.gateway = await startHost(`gateway-${rt}`, {
      manifest, wasm: FILES.gatewayWasm, port: r.gwPort, vars: gatewayVars(urlOf(r.gwPort)), runtime: rt, runtimeConfig: spinRc(rt),
    });
    if (opts.floorReads.length) {
      r.floorKv = await startHost(`floor-kv-${rt}`, {
        manifest: path.join(ROOT, 'bench', 'passthrough', 'spin-kv.toml'), wasm: FILES.floorWasm, port: await freePort(),
        // The gateway's runtime config: the same KV backend.
        vars: { origin_url: originUrl }, runtime: rt, runtimeConfig: spinRc(rt),
      });
    }
    for (const v of r.floors) {
      v.proc = await startHost(`floor-${v.name}-${rt}`, {
        manifest: path.join(ROOT, 'bench', 'passthrough', 'spin.toml'), wasm: v.wasm, port: v.port,
        vars: { origin_url: originUrl }, runtime: rt, ...(v.staticVariables ? { staticVars: true } : {}),
      });
    }
    for (const v of r.variants) {
      v.proc = await startHost(`gateway-${v.name}-${rt}`, {
        manifest, wasm: v.wasm, port: v.port, vars: gatewayVars(urlOf(v.port)), runtime: rt, runtimeConfig: spinRc(rt),
        ...(v.staticVariables ? { staticVars: true } : {}),
      });
    }
  }
  // The gateway whose memory is reported (and the long run's): the first runtime's.
  const gateway = rts[opts.runtimes[0]].gateway;
  // --kv-keys: the same gateway over a store already holding that many keys.
  const gatewayKv = opts.kvKeys > 0 ? await startHost('gateway-kv', {
    manifest, wasm: FILES.gatewayWasm, port: kvPort, vars: gatewayVars(kvUrl),
    stateDir: stateDirWithKeys(opts.kvKeys),
  }) : null;

  // --tenants N: the gateway with its tenant stored in KV (tenant_store =
  // "kv", put through the admin API), alone (t1) and among N stored tenants
  // (tN): a request reads its own tenant's document only, so N must not matter.
  const adminToken = b64url(24);
  async function tenantsGateway(name, url, port, count) {
    const host = await startHost(name, {
      manifest: path.join(ROOT, 'spin.toml'), wasm: FILES.gatewayWasm, port,
      vars: { ...gatewayVars(url), public_url: 'http://127.0.0.1:1', allowed_email_domains: '', tenant_store: 'kv', admin_token: adminToken },
    });
    const put = async (id, doc) => {
      const r = await fetch(`${url}/.edgeauth/admin/tenants/${id}`, {
        method: 'PUT', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(doc),
      });
      if (r.status !== 201) throw new Error(`${name}: PUT ${id}: ${r.status} ${await r.text()}`);
    };
    // The others first, each a realistic document of its own.
    for (let i = 1; i < count; i++) {
      const n = String(i).padStart(4, '0');
      await put(`t${n}`, {
        public_url: `https://t${n}.bench.test`, name: `Tenant ${n}`, oidc_client_id: `client-${n}`,
        allowed_email_domains: [`t${n}.example`], assertion_audience: `https://app.t${n}.example`,
        routes: [{ path: '/public/', public: true }, { path: '/admin/', allowed_groups: ['admins'] }, { path: '/api/', api: true }],
      });
    }
    await put('bench', { public_url: url, name: 'Bench', allowed_email_domains: 'example.com' });
    return host;
  }
  const tenants1 = opts.tenants > 0 ? await tenantsGateway('gateway-t1', t1Url, t1Port, 1) : null;
  const tenantsN = opts.tenants > 0 ? await tenantsGateway(`gateway-t${opts.tenants}`, tnUrl, tnPort, opts.tenants) : null;

  // A real session for alice, through the dev IdP, for the gateway(s) ...
  async function gatewaySession(url, name) {
    const jar = new CookieJar();
    const first = await request(`${url}/`, { jar });
    if (first.status !== 302) throw new Error(`${name}: expected a login redirect, got ${first.status} ${first.body.slice(0, 300)}`);
    const login = await request(first.location, { jar });
    const walk = await walkIdp(jar, login.location, { username: 'alice', password: 'alice-pw' });
    const cb = await request(walk.location, { jar });
    const cookie = jar.header(`${url}/`);
    if (cb.status !== 302 || !/edgeauth_session=/.test(cookie)) throw new Error(`${name} login failed: ${cb.status} ${cb.body.slice(0, 300)}`);
    return cookie;
  }
  for (const [rt, r] of Object.entries(rts)) {
    r.cookie = await gatewaySession(r.gateway.url, `gateway-${rt}`);
    for (const v of r.variants) v.cookie = await gatewaySession(v.proc.url, `gateway-${v.name}-${rt}`);
  }
  const gwCookie = rts[opts.runtimes[0]].cookie;
  const kvCookie = gatewayKv ? await gatewaySession(kvUrl, 'gateway-kv') : null;
  const t1Cookie = tenants1 ? await gatewaySession(t1Url, 'gateway-t1') : null;
  const tnCookie = tenantsN ? await gatewaySession(tnUrl, 'gateway-tN') : null;

  // ... and for the peer.
  let peer = null;
  let peerCookie = null;
  if (opts.peer) {
    peer = await service('peer', process.execPath, [path.join(PEER_DIR, 'peer.mjs')], {
      env: { PEER_PORT: String(peerPort), PEER_URL: peerUrl, ISSUER: issuer, ORIGIN_URL: originUrl, PEER_SECRET: b64url(32), ALLOWED_DOMAIN: 'example.com', NODE_ENV: 'production' },
      ready: /peer listening on/,
    });
    peer.url = peerUrl;
    const jar = new CookieJar();
    const r = await request(`${peerUrl}/`, { jar });
    if (r.status !== 302) throw new Error(`peer: expected a login redirect, got ${r.status} ${r.body.slice(0, 300)}`);
    const walk = await walkIdp(jar, r.location, { username: 'alice', password: 'alice-pw' });
    if (!walk.location) throw new Error(`peer login: IdP did not redirect back: ${walk.hops.join('\n')}`);
    const cb = await request(walk.location, { jar });
    peerCookie = jar.header(`${peerUrl}/`);
    if (cb.status !== 302 || !/appSession/.test(peerCookie)) throw new Error(`peer login failed: ${cb.status} ${cb.body.slice(0, 300)}`);
  }

  // Keys are `<what>@<runtime>` for what runs under each runtime.
  const several = opts.runtimes.length > 1;
  const tag = (rt) => (several ? ` [${rt}]` : '');
  const targets = [
    { key: 'origin', label: '(c) origin direct', url: originUrl, proxied: false, pid: origin.pid },
    ...Object.entries(rts).flatMap(([rt, r]) => [
      { key: `floor@${rt}`, label: `(a) floor: pass-through component${tag(rt)}`, url: r.floor.url, proxied: true, pid: r.floor.pid },
      { key: `gateway@${rt}`, label: `(b) edgeauth gateway${tag(rt)}`, url: r.gateway.url, cookie: r.cookie, proxied: true, pid: r.gateway.pid },
      ...opts.floorReads.map((n) => ({ key: `floor+${n}kv@${rt}`, label: `(a') ${readsLabel(n)} per request${tag(rt)}`, url: r.floorKv.url, headers: { 'Edgeauth-Bench-Kv-Reads': String(n) }, proxied: true, pid: r.floorKv.pid })),
      ...r.floors.map((v) => ({ key: `floor-${v.name}@${rt}`, label: `(a) floor build \`${v.name}\`${tag(rt)}`, url: v.proc.url, proxied: true, pid: v.proc.pid })),
      ...r.variants.map((v) => ({ key: `${v.name}@${rt}`, label: `(b) gateway build \`${v.name}\`${tag(rt)}`, url: v.proc.url, cookie: v.cookie, proxied: true, pid: v.proc.pid })),
      // --health: the gateway's fixed cost alone: instantiation and settings, no KV, no outbound call.
      ...(opts.health ? [{ key: `health@${rt}`, label: `(h) gateway \`/.edgeauth/health\`${tag(rt)}`, url: r.gateway.url, path: '/.edgeauth/health', proxied: false, pid: r.gateway.pid }] : []),
    ]),
    ...(gatewayKv ? [{ key: 'gatewaykv@host', label: `(b') edgeauth gateway, ${fi(opts.kvKeys)} keys in KV`, url: gatewayKv.url, cookie: kvCookie, proxied: true, pid: gatewayKv.pid }] : []),
    ...(tenants1 ? [
      { key: 'tenants1@host', label: '(t1) gateway, its tenant stored in KV, 1 tenant', url: tenants1.url, cookie: t1Cookie, proxied: true, pid: tenants1.pid },
      { key: 'tenantsN@host', label: `(tN) gateway, its tenant stored in KV, ${fi(opts.tenants)} tenants`, url: tenantsN.url, cookie: tnCookie, proxied: true, pid: tenantsN.pid },
    ] : []),
    ...(peer ? [{ key: 'peer', label: '(d) peer: express-openid-connect + proxy', url: peer.url, cookie: peerCookie, proxied: true, pid: peer.pid }] : []),
  ];
  const PATH = '/app/page?x=1';

  // Every target must really serve the origin's 1 KiB with these cookies.
  for (const t of targets) {
    const r = await request(t.url + (t.path ?? PATH), { headers: { ...(t.cookie ? { cookie: t.cookie } : {}), ...t.headers }, accept: '*/*' });
    if (t.path) {
      if (r.status !== 200) throw new Error(`${t.key}: expected 200, got ${r.status}: ${r.body.slice(0, 200)}`);
    } else if (r.status !== 200 || r.body.length !== 1024) {
      throw new Error(`${t.key}: expected 200 + 1 KiB, got ${r.status} (${r.body.length} bytes): ${r.body.slice(0, 200)}`);
    }
  }
  if (opts.hold) {
    // For profiling: everything stays up, signed in, until Ctrl-C.
    for (const t of targets) {
      console.log(`${t.key}\t${t.url}${t.path ?? PATH}\tpid ${t.pid ?? '-'}\t${t.cookie ? `Cookie: ${t.cookie}` : ''}${Object.entries(t.headers ?? {}).map(([k, v]) => `\t${k}: ${v}`).join('')}`);
    }
    console.error('bench: holding; Ctrl-C to stop');
    await new Promise(() => {});
  }
  // Warm up (JIT, caches, connection pools), then measure.
  for (const t of targets) wrk(t.url + (t.path ?? PATH), Math.max(...opts.conns), opts.smoke ? 1 : 3, t.cookie, t.headers);
  const rssBefore = groupRssKiB(gateway.pid);
  const loads = [loadavg()];

  const results = {};
  for (let round = 0; round < opts.rounds; round++) {
    for (const c of opts.conns) {
      for (const t of targets) {
        const before = t.proxied ? await originCount(originUrl) : 0;
        const cpu0 = t.pid ? groupCpuUs(t.pid) : NaN;
        const r = wrk(t.url + (t.path ?? PATH), c, opts.duration, t.cookie, t.headers);
        // The server's CPU per request (its process group; the origin's not included).
        r.cpu = t.pid ? (groupCpuUs(t.pid) - cpu0) / r.requests : NaN;
        if (t.proxied) {
          const reached = (await originCount(originUrl)) - before;
          if (reached < r.requests) r.errors += r.requests - reached;
        }
        if (r.errors) throw new Error(`${t.key} at ${c} connection(s): ${r.errors} failed requests\n${r.raw}`);
        (results[`${t.key}/${c}`] ??= []).push(r);
        console.error(`bench: round ${round + 1} c=${c} ${t.key.padEnd(12)} ${fi(r.rps).padStart(7)} req/s  p50 ${f(r.p50, 3)} ms  p99 ${f(r.p99, 3)} ms`);
      }
    }
    loads.push(loadavg());
    console.error(`bench: load average after round ${round + 1}: ${loads.at(-1)}`);
  }
  const rssAfter = groupRssKiB(gateway.pid);

  let long = null;
  if (opts.long > 0) {
    console.error(`bench: long run, ${opts.long} s at 32 connections against the gateway`);
    const samples = [];
    const timer = setInterval(() => samples.push(groupRssKiB(gateway.pid).rss), Math.max(1000, opts.long * 100));
    const beforeLong = groupRssKiB(gateway.pid);
    const child = spawn('wrk', ['-t1', '-c32', `-d${opts.long}s`, '--latency', '--timeout', '5s', '-H', `Cookie: ${gwCookie}`, gateway.url + PATH], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    await new Promise((r) => child.on('exit', r));
    clearInterval(timer);
    const afterLong = groupRssKiB(gateway.pid);
    const rps = Number(out.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
    const non2xx = Number(out.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
    long = { seconds: opts.long, before: beforeLong, after: afterLong, samples, rps, non2xx };
  }

  const started_ = Object.values(rts).flatMap((r) => [r.gateway, r.floor, r.floorKv, ...r.variants.map((v) => v.proc), ...r.floors.map((v) => v.proc)]);
  for (const p of [peer, ...started_, gatewayKv, tenants1, tenantsN, idp, origin]) p?.stop();

  // ---------------------------------------------------------------- report
  const cpu = os.cpus();
  const lines = [];
  const date = started.toISOString().slice(0, 10);
  lines.push(`### ${date}: ${cpu.length} cores (${cpu[0]?.model?.trim() ?? 'unknown CPU'}), ${os.type()} ${os.release()}`);
  lines.push('');
  const runtimeLine = opts.runtimes.map((rt) => (rt === 'host'
    ? `host \`${path.basename(path.dirname(FILES.host))}/${path.basename(FILES.host)}${opts.hostArgs.length ? ` ${opts.hostArgs.join(' ')}` : ''}\``
    : `\`${spinVersion()}\`${opts.spinRuntimeConfig ? ` (gateway runtime config \`${path.relative(ROOT, opts.spinRuntimeConfig)}\`)` : ''}, variables from ${opts.spinVariables === 'static' ? 'a static provider in the runtime config' : 'the environment (SPIN_VARIABLE_*)'}`)).join(', ');
  lines.push(`${opts.smoke ? '**Smoke run** (numbers meaningless): ' : ''}${opts.rounds} interleaved rounds × ${opts.duration} s per target and connection count, \`${wrkVersion()}\` with 1 thread, \`GET ${PATH}\` → 1 KiB from the native origin; median (min–max). Runtime${opts.runtimes.length > 1 ? 's' : ''}: ${runtimeLine}. Load average (1, 5, 15 min) after warm-up and after each round: ${loads.join(' / ')}.`);
  lines.push('');
  lines.push('| target | conns | req/s | p50 ms | p99 ms | CPU µs/req |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const c of opts.conns) {
    for (const t of targets) {
      const rs = results[`${t.key}/${c}`];
      lines.push(`| ${t.label} | ${c} | ${cell(stat(rs.map((r) => r.rps)), fi)} | ${cell(stat(rs.map((r) => r.p50)), (x) => f(x, 3))} | ${cell(stat(rs.map((r) => r.p99)), (x) => f(x, 3))} | ${t.pid ? fi(median(rs.map((r) => r.cpu))) : ''} |`);
    }
  }
  lines.push('');
  lines.push('| ratio (per round, median (min–max)) | conns | value | target |');
  lines.push('|---|---:|---:|---|');
  const perRound = (a, b, fn) => results[a].map((r, i) => fn(r, results[b][i]));
  const pct = (x) => `${f(x, 0)} %`;
  const msd = (x) => `${f(x, 3)} ms`;
  const times = (x) => `${f(x, 2)}×`;
  // One cell each: a's throughput as a share of b's, a's p50 above b's, a's throughput over the peer's.
  const share = (a, b) => cell(stat(perRound(a, b, (x, y) => (100 * x.rps) / y.rps)), pct);
  const addedP50 = (a, b) => cell(stat(perRound(a, b, (x, y) => x.p50 - y.p50)), msd);
  const overPeer = (a, c) => cell(stat(perRound(a, `peer/${c}`, (x, y) => x.rps / y.rps)), times);
  for (const c of opts.conns) {
    for (const rt of opts.runtimes) {
      const g = `gateway@${rt}/${c}`;
      const fl = `floor@${rt}/${c}`;
      const t = tag(rt);
      lines.push(`| gateway/floor throughput${t} | ${c} | ${share(g, fl)} | ≥ 70 % |`);
      lines.push(`| gateway − floor, p50${t} | ${c} | ${addedP50(g, fl)} | ≤ 0.25 ms |`);
      lines.push(`| gateway − floor, p99${t} | ${c} | ${cell(stat(perRound(g, fl, (x, y) => x.p99 - y.p99)), msd)} | ≤ 1 ms |`);
      for (const v of rts[rt].variants) {
        // Against the floor build of the same name if there is one (a before/after pair).
        const own = rts[rt].floors.some((x) => x.name === v.name);
        const vf = own ? `floor-${v.name}@${rt}/${c}` : fl;
        const fname = own ? `floor \`${v.name}\`` : 'floor';
        lines.push(`| \`${v.name}\`/${fname} throughput${t} | ${c} | ${share(`${v.name}@${rt}/${c}`, vf)} | ≥ 70 % |`);
        lines.push(`| \`${v.name}\` − ${fname}, p50${t} | ${c} | ${addedP50(`${v.name}@${rt}/${c}`, vf)} | ≤ 0.25 ms |`);
        if (peer) lines.push(`| \`${v.name}\`/peer throughput${t} | ${c} | ${overPeer(`${v.name}@${rt}/${c}`, c)} | ≥ 3× |`);
      }
      if (opts.health) lines.push(`| health/floor throughput${t} | ${c} | ${share(`health@${rt}/${c}`, fl)} | |`);
      if (peer) lines.push(`| gateway/peer throughput${t} | ${c} | ${overPeer(g, c)} | ≥ 3× |`);
      // Ceilings: no gateway under this runtime does better than the floor,
      // nor, if it reads the store per request, than the floor with reads.
      if (peer) lines.push(`| floor/peer throughput (any gateway's ceiling)${t} | ${c} | ${overPeer(fl, c)} | |`);
      for (const n of opts.floorReads) {
        const fk = `floor+${n}kv@${rt}/${c}`;
        const what = readsLabel(n);
        lines.push(`| ${what}/floor throughput${t} | ${c} | ${share(fk, fl)} | |`);
        lines.push(`| ${what} − floor, p50${t} | ${c} | ${addedP50(fk, fl)} | |`);
        if (peer) lines.push(`| ${what}/peer throughput${t} | ${c} | ${overPeer(fk, c)} | |`);
      }
    }
    if (opts.runtimes.includes('host') && opts.runtimes.includes('spin')) {
      for (const what of ['floor', 'gateway', ...(opts.health ? ['health'] : [])]) {
        lines.push(`| ${what}: Spin/host throughput | ${c} | ${share(`${what}@spin/${c}`, `${what}@host/${c}`)} | |`);
      }
    }
    const g = `gateway@host/${c}`;
    if (gatewayKv) {
      lines.push(`| gateway with ${fi(opts.kvKeys)} KV keys / gateway, throughput | ${c} | ${share(`gatewaykv@host/${c}`, g)} | ≈ 100 % |`);
      lines.push(`| gateway with ${fi(opts.kvKeys)} KV keys − gateway, p50 | ${c} | ${addedP50(`gatewaykv@host/${c}`, g)} | ≈ 0 |`);
    }
    if (tenants1) {
      lines.push(`| ${fi(opts.tenants)} stored tenants / 1, throughput | ${c} | ${share(`tenantsN@host/${c}`, `tenants1@host/${c}`)} | ≈ 100 % |`);
      lines.push(`| ${fi(opts.tenants)} stored tenants − 1, p50 | ${c} | ${addedP50(`tenantsN@host/${c}`, `tenants1@host/${c}`)} | ≈ 0 |`);
      lines.push(`| ${fi(opts.tenants)} stored tenants − 1, p99 | ${c} | ${cell(stat(perRound(`tenantsN@host/${c}`, `tenants1@host/${c}`, (x, y) => x.p99 - y.p99)), msd)} | ≈ 0 |`);
    }
  }
  lines.push('');
  const us = (k) => `${f(core[k], 1)} µs`;
  const cbSteps = ['cb_begin', 'cb_replay_key', 'cb_provider_cache_decode', 'cb_token_request', 'cb_parse_token_response', 'cb_jwks_parse', 'cb_verify_rs256', 'cb_complete'];
  lines.push(`- **Login callback CPU** (core, native, IdP round trips excluded, RS256 ID token like the dev IdP's): **${us('callback_total_rs256')}** including settings parse ${us('settings_parse')}; steps: ${cbSteps.map((k) => `${k.replace(/^cb_/, '')} ${us(k)}`).join(', ')}; verify ES256 ${us('cb_verify_es256')}, EdDSA ${us('cb_verify_eddsa')}.`);
  lines.push(`- **Sign-in work added by profiles and login events** (core, native, KV and network excluded, one webhook endpoint): **${us('login_added_first')}** for a first login, **${us('login_added_returning')}** for a returning one; steps: profile decode ${us('profile_decode')} (${core.profile_bytes} bytes), plan first ${us('profile_sign_in_first')} / returning ${us('profile_sign_in_returning')}, events ${us('event_build_first_login')}, outbox deliveries ${us('outbox_deliveries')}, entry ${us('outbox_encode_entry')}, signed request ${us('webhook_sign_request')}.`);
  lines.push(`- **Per-request core CPU** (native, same session cookie, ${core.cookie_bytes} bytes): ${us('request_total')} = settings parse ${us('settings_parse')} + route ${us('route')} + authorize ${us('authorize')} (session open ${us('session_read')}, policy ${us('policy')}, assertion sign ${us('assertion_sign')}, origin headers ${us('origin_headers')}).`);
  if (core.idle_duty !== undefined) {
    lines.push(`- **Session lifecycle bookkeeping** (core, native): idle-timeout check per request ${us('idle_duty')}; cookie re-issue (once per \`session_reissue_secs\`) ${us('idle_reissue')}; revocation lookups (one opening of the session cookie for both its own entry and its person's) ${us('revocation_keys')}. No store access and no network for either; a refresh is due once per \`refresh_interval_secs\` per session.`);
  }
  const size = (p) => `${fi(fs.statSync(p).size)} bytes`;
  lines.push(`- **Component size**: gateway.wasm ${size(FILES.gatewayWasm)}; pass-through ${size(FILES.floorWasm)}.`);
  const mib = (k) => `${f(k / 1024, 1)} MiB`;
  lines.push(`- **Gateway RSS** (${opts.runtimes[0]}${opts.runtimes[0] === 'spin' ? ', all its processes' : ''}): ${mib(rssBefore.rss)} after warm-up → ${mib(rssAfter.rss)} after the rounds (peak ${mib(rssAfter.hwm)}).`);
  if (long) {
    lines.push(`- **Long run** (${long.seconds} s, 32 connections, gateway): ${fi(long.rps)} req/s${long.non2xx ? `, ${long.non2xx} non-2xx` : ''}; RSS ${mib(long.before.rss)} before → ${mib(long.after.rss)} after (samples ${long.samples.map((s) => f(s / 1024, 1)).join(', ')} MiB; peak ${mib(long.after.hwm)}).`);
  } else {
    lines.push('- **Long run**: not run (`--long 600` for the 10-minute RSS check).');
  }
  const md = `${lines.join('\n')}\n`;
  process.stdout.write(md);

  const out = opts.out ?? (opts.smoke ? path.join(WORK, 'smoke.md') : path.join(ROOT, 'bench', 'results', `${date}.md`));
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, md);
  console.error(`bench: written to ${path.relative(ROOT, out)}`);
  if (!opts.smoke && !opts.out) {
    const re = /(<!-- bench:latest -->\n)[\s\S]*?(<!-- \/bench:latest -->)/;
    for (const readme of [path.join(ROOT, 'README.md'), path.join(ROOT, 'bench', 'README.md')]) {
      const text = fs.readFileSync(readme, 'utf8');
      if (re.test(text)) fs.writeFileSync(readme, text.replace(re, `$1${md}$2`));
    }
  }
}

main().then(() => process.exit(0), (e) => { console.error(`bench: ${e.stack || e}`); process.exit(1); });
