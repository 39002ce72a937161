// Start the dev IdP, the example origin and the edgeauth host on free loopback
// ports (gateway and origin on 127.0.0.1, IdP on 127.0.0.2).

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, freePort, onExitSync, startProcess } from './procs.mjs';
import { RUNTIME, SPIN_BIN, findSpin } from './runtime.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
export const HOST_BIN = process.env.EDGEAUTH_HOST_BIN || path.join(TARGET, 'debug', 'edgeauth');

/**
 * The `edgeauth` tool for a test file: `cli(args, env)` resolves to its
 * stdout; `cliFails(args, env)` to its stdout and stderr, and throws if it
 * succeeded. `baseEnv` is added to every call's environment. Asynchronous on
 * purpose: a synchronous child process would stop this process from draining
 * the gateways' log pipes, and a gateway blocked on a full pipe never answers.
 */
export function edgeauthCli(baseEnv = {}) {
  const run = promisify(execFile);
  const cli = async (args, env = {}) =>
    (await run(HOST_BIN, args, { env: { ...process.env, ...baseEnv, ...env }, encoding: 'utf8' })).stdout;
  const cliFails = async (args, env = {}) => {
    try {
      await cli(args, env);
    } catch (e) {
      return `${e.stdout}${e.stderr}`;
    }
    throw new Error(`expected failure: edgeauth ${args.join(' ')}`);
  };
  return { cli, cliFails };
}

export const COMPONENT = process.env.EDGEAUTH_COMPONENT
  || path.join(TARGET, 'wasm32-wasip2', 'release', 'edgeauth_component.wasm');
export const MANIFEST = process.env.EDGEAUTH_MANIFEST || path.join(ROOT, 'spin.toml');
export const IDP_HOST = '127.0.0.2';
export const CLIENT_SECRET = 'edgeauth-dev-secret';

// ---------------------------------------------------------------- keys
export function sessionKey(kid = `s${crypto.randomBytes(3).toString('hex')}`) {
  return { kid, spec: `${kid}:${crypto.randomBytes(32).toString('base64url')}` };
}

/** An assertion signing key: spec for SPIN_VARIABLE_ASSERTION_KEYS plus its public JWK. */
export function assertionKey(alg = 'ed25519', kid = `a${crypto.randomBytes(3).toString('hex')}`) {
  const kp = alg === 'es256'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('ed25519');
  const jwk = kp.privateKey.export({ format: 'jwk' });
  const pub = kp.publicKey.export({ format: 'jwk' });
  return { kid, alg, spec: `${kid}:${alg}:${jwk.d}`, publicJwk: pub };
}

// ---------------------------------------------------------------- services
export async function startIdp({ gatewayUrls, env = {}, port, echo = false } = {}) {
  const host = env.IDP_HOST || IDP_HOST;
  const start = async (p) => startProcess('idp', process.execPath, [path.join(ROOT, 'tests/idp/idp.mjs')], {
    env: { IDP_HOST, GATEWAY_URL: gatewayUrls.join(','), ...env, IDP_PORT: String(p) },
    ready: /idp listening on (http:\/\/\S+)/,
    timeoutMs: 20000, echo,
  });
  let started;
  try {
    started = await start(port ?? env.IDP_PORT ?? await freePort(host));
  } catch (e) {
    // Seen in CI on a busy machine: a provider process occasionally stalls
    // before listening (it prints oidc-provider's import warning, then
    // nothing) and never recovers. It is killed (startProcess) and one fresh
    // provider on a new port is started instead; a second stall fails.
    if (!/not ready after/.test(e.message)) throw e;
    console.log(`# idp stalled before listening; starting another (${e.message.split('\n')[0]})`);
    started = await start(await freePort(host));
  }
  const { proc, match } = started;
  return { proc, url: match[1], issuer: env.IDP_ISSUER || match[1], stop: () => proc.stop() };
}

export async function startOrigin({ env = {}, port, echo = false } = {}) {
  const p = port ?? await freePort('127.0.0.1');
  const { proc, match } = await startProcess('origin', process.execPath, [path.join(ROOT, 'tests/origin/origin.mjs')], {
    env: { ORIGIN_PORT: String(p), ...env },
    ready: /origin listening on (http:\/\/\S+)/,
    timeoutMs: 30000, echo,
  });
  const url = match[1];
  return {
    proc, url, stop: () => proc.stop(),
    async requests() {
      const r = await fetch(`${url}/__origin/requests`);
      return r.json();
    },
    async reset() { await fetch(`${url}/__origin/reset`, { method: 'POST' }); },
  };
}

/** The Spin CLI for a gateway started with `runtime: 'spin'` (whatever EDGEAUTH_RUNTIME says). */
const spinBin = () => SPIN_BIN ?? findSpin();

export function checkBinaries(runtime = RUNTIME) {
  if (runtime === 'spin' && !spinBin()) throw new Error('EDGEAUTH_RUNTIME=spin: no spin on PATH (or SPIN_BIN)');
  // .mjs: tests/tools/reference-gateway.mjs; under Spin the host is only the tests' `rule` CLI.
  const needed = runtime === 'spin' ? [COMPONENT, MANIFEST]
    : HOST_BIN.endsWith('.mjs') ? [HOST_BIN] : [HOST_BIN, COMPONENT, MANIFEST];
  const missing = needed.filter((f) => !fs.existsSync(f));
  if (missing.length) {
    throw new Error(`missing build outputs: ${missing.join(', ')} — run scripts/test (or set EDGEAUTH_HOST_BIN / EDGEAUTH_COMPONENT)`);
  }
}

/**
 * Start one edgeauth gateway under the runtime (tests/lib/runtime.mjs). `vars`
 * are Spin variable overrides (lower-case names like public_url); keys default
 * to a fresh session key and ed25519 assertion key. `runtimeConfig`: the text
 * of a Spin runtime config file (both runtimes read it, e.g. a KV store in
 * Redis: tests/lib/redis.mjs). `component`: another build of
 * the gateway's wasm (bench/login.mjs compares two). `runtime`: this gateway's
 * runtime instead of EDGEAUTH_RUNTIME's (bench/login.mjs runs both side by side).
 */
export async function startGateway({ port, originUrl, issuer, clientId = 'edgeauth', clientSecret = CLIENT_SECRET,
  sessionKeys, assertionKeys, allowedEmailDomains = '', vars = {}, env = {}, echo = false, stateDir: givenStateDir,
  keepState = false, manifest = MANIFEST, runtimeConfig, component = COMPONENT, runtime = RUNTIME }) {
  checkBinaries(runtime);
  const p = port ?? await freePort('127.0.0.1');
  const publicUrl = `http://127.0.0.1:${p}`;
  const sk = sessionKeys ?? [sessionKey()];
  const ak = assertionKeys ?? [assertionKey('ed25519')];
  // `stateDir`: start from prepared key-value data (removed at stop like a
  // fresh one, unless `keepState`: scripts/demo's EDGEAUTH_DEMO_STATE).
  const stateDir = givenStateDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-state-'));
  let cleanup = () => {}; // the runtime's own files (spinUp)
  const removeState = () => {
    cleanup();
    if (!keepState) fs.rmSync(stateDir, { recursive: true, force: true });
  };
  const forgetRemoval = onExitSync(removeState); // also when the file is killed before stop()
  const spinVars = {
    public_url: publicUrl,
    origin_url: originUrl,
    oidc_issuer: issuer,
    oidc_client_id: clientId,
    oidc_client_secret: clientSecret,
    session_keys: sk.map((k) => k.spec).join(','),
    assertion_keys: ak.map((k) => k.spec).join(','),
    allowed_email_domains: allowedEmailDomains,
    ...vars,
  };
  const varEnv = Object.fromEntries(Object.entries(spinVars).map(([k, v]) => [`SPIN_VARIABLE_${k.toUpperCase()}`, v]));
  let cmd; let args; let ready;
  if (runtime === 'spin') {
    [cmd, args, ready, cleanup] = spinUp(manifest, p, stateDir, component);
  } else {
    [cmd, args, ready] = [HOST_BIN, ['up', '--manifest', manifest, '--listen', `127.0.0.1:${p}`, '--component', component,
      '--state-dir', stateDir], /edgeauth host listening on (http:\/\/\S+)/];
  }
  if (runtimeConfig !== undefined) {
    // Spin's runtime config (e.g. the KV store in Redis): both runtimes read
    // it from `--runtime-config-file`.
    const rc = path.join(stateDir, 'runtime-config.toml');
    fs.writeFileSync(rc, runtimeConfig);
    args.push('--runtime-config-file', rc);
  }
  const { proc, match } = await startProcess('gateway', cmd, args, {
    env: { RUST_BACKTRACE: '1', ...varEnv, ...env },
    ready, timeoutMs: 120000, echo,
  }).catch((e) => { removeState(); forgetRemoval(); throw e; });
  return {
    proc, url: publicUrl, listenUrl: match[1], sessionKeys: sk, assertionKeys: ak, stateDir, vars: spinVars,
    async stop() {
      await proc.stop();
      removeState();
      forgetRemoval();
    },
  };
}

/**
 * `spin up` for `manifest` with the component scripts/test built: Spin takes
 * `source` relative to the manifest, so it gets a copy of the manifest whose
 * gateway `source` is that wasm's absolute path. The copy sits next to the
 * manifest when a test wrote its own (its `files` stay relative to it), else
 * in a temporary directory. KV: Spin's default SQLite store in `stateDir`.
 */
function spinUp(manifest, port, stateDir, component = COMPONENT) {
  const text = fs.readFileSync(manifest, 'utf8');
  const section = text.indexOf('[component.gateway]');
  const source = /^source\s*=\s*"[^"\n]*"\s*$/m;
  const tail = text.slice(section);
  if (section < 0 || !source.test(tail)) throw new Error(`${manifest}: no [component.gateway] source to point at ${component}`);
  const copy = text.slice(0, section) + tail.replace(source, `source = ${JSON.stringify(component)}`);
  const own = path.resolve(manifest) === path.resolve(MANIFEST);
  const dir = own ? fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-spin-app-')) : path.dirname(manifest);
  const file = path.join(dir, `spin-${port}.toml`);
  fs.writeFileSync(file, copy);
  const cleanup = () => fs.rmSync(own ? dir : file, { recursive: true, force: true });
  return [spinBin(), ['up', '--from', file, '--listen', `127.0.0.1:${port}`, '--state-dir', stateDir],
    /^Serving (http:\/\/\S+)/, cleanup];
}

/**
 * IdP + origin + gateway(s). `gateways` is the number of gateway ports to
 * register at the IdP; the first is started with `gatewayOptions`, the others
 * with `stack.startGateway(options)` later.
 */
export async function startStack({ gateways = 1, gatewayOptions = {}, idpEnv = {} } = {}) {
  const ports = [];
  for (let i = 0; i < gateways; i++) ports.push(await freePort('127.0.0.1'));
  const started = [];
  const stack = { ports, gateways: started };
  try {
    // allSettled: when one fails, the other may still start, and must be
    // stopped too (a live child keeps the test file's process from ending).
    const [idpR, originR] = await Promise.allSettled([
      startIdp({ gatewayUrls: ports.map((p) => `http://127.0.0.1:${p}`), env: idpEnv }),
      startOrigin(),
    ]);
    stack.idp = idpR.value;
    stack.origin = originR.value;
    for (const r of [idpR, originR]) if (r.status === 'rejected') throw r.reason;
    const { idp, origin } = stack;
    let next = 0;
    stack.startGateway = async (opts = {}) => {
      if (next >= ports.length) throw new Error('startStack: no gateway port left; raise `gateways`');
      const gw = await startGateway({ port: ports[next++], originUrl: origin.url, issuer: idp.issuer, ...opts });
      started.push(gw);
      return gw;
    };
    stack.gateway = await stack.startGateway(gatewayOptions);
  } catch (e) {
    await stopStack(stack);
    throw e;
  }
  return stack;
}

export async function stopStack(stack) {
  if (!stack) return;
  await Promise.all([
    ...(stack.gateways || []).map((g) => g.stop()),
    stack.idp?.stop(),
    stack.origin?.stop(),
  ]);
}
