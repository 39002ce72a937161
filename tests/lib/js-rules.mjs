// The JavaScript example rules, built by the JS toolchain (componentize-js,
// plugins/sdk-js/build.mjs) and signed by `edgeauth rule build`, cached in
// $CARGO_TARGET_DIR/js-rules: a cold build takes minutes on 2 cores
// (componentize ~20 s, then `rule build` compiles ~9 MB of engine code twice:
// pulley64 to check it, pulley32 for the gateway). Inputs unchanged (the
// rule's sources, the SDK, the WIT, the host's precompiling and signing
// code and Cargo.lock), the cached files are used. scripts/test runs this file first (`node tests/lib/js-rules.mjs`) so
// the test files' own before() finds everything built within their timeout.
// Also `rule new --lang js`'s template (jsTemplate), for tests/e2e/95-rule-kit.

import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import os from 'node:os';
import { buildRule } from '../../plugins/sdk-js/build.mjs';
import { ROOT } from './procs.mjs';

const TARGET = path.resolve(ROOT, process.env.CARGO_TARGET_DIR || 'target');
const HOST_BIN = process.env.EDGEAUTH_HOST_BIN || path.join(TARGET, 'debug', 'edgeauth');
export const CACHE = path.join(TARGET, 'js-rules');
const run = promisify(execFile);

/** The example rules in JavaScript: name in the chain -> source. */
export const JS_RULES = {
  'email-domain-js': path.join(ROOT, 'plugins/examples-js/email-domain/rule.js'),
  'profile-js': path.join(ROOT, 'plugins/examples-js/progressive-profile/rule.js'),
};

/**
 * The host's compiled-component cache (EDGEAUTH_CACHE_DIR) for the commands
 * the tests run on JS rules (kept with the rest, not in the user's cache):
 * `rule build` compiles each component to check it (~40 s), `rule test DIR`
 * of `rule new --lang js`'s template also builds it (build.mjs --cache here).
 */
export const HOST_CACHE = path.join(CACHE, 'host');
/** The name tests/e2e/95-rule-kit gives the JS template (its directory's name is part of the build's cache key). */
export const TEMPLATE_JS = 'hello-js';

/**
 * `edgeauth rule new TEMPLATE_JS --lang js`, built and compiled as `rule
 * validate` does, so the caches in HOST_CACHE hold it: keyed on the
 * template's sources (the host writes them; the build's key is what it
 * reads: rule.js, the SDK, the WIT) and then on the component's bytes. A
 * minute or two cold, a few seconds warm. Returns the log lines.
 */
export async function jsTemplate() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-js-template-'));
  try {
    const dir = path.join(tmp, TEMPLATE_JS);
    await run(HOST_BIN, ['rule', 'new', TEMPLATE_JS, '--lang', 'js', '--dir', dir]);
    const t = Date.now();
    const { stdout } = await run(HOST_BIN, ['rule', 'validate', dir], { env: { ...process.env, EDGEAUTH_CACHE_DIR: HOST_CACHE } });
    return [`${TEMPLATE_JS} (rule new --lang js): ${stdout.trim()} in ${Date.now() - t} ms`];
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The signing key of the cached artifacts (made once, kept with them). */
async function testKey() {
  const file = path.join(CACHE, 'test-signing-key');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(CACHE, { recursive: true });
    const { stdout } = await run(HOST_BIN, ['rule', 'keygen', '--kid', 'jstest']);
    fs.writeFileSync(`${file}.tmp`, stdout);
    fs.renameSync(`${file}.tmp`, file);
  }
  const [secret, pub] = fs.readFileSync(file, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  return { secret, public: pub };
}

/**
 * Builds (or finds cached) the JS rules' components and signed artifacts:
 * { key, wasm: { name: component path }, rule: { name: artifact path }, log }.
 */
export async function jsRules() {
  const key = await testKey();
  // What an artifact depends on besides the component: how the host
  // precompiles and signs (not every rebuild of the host binary).
  const host = crypto.createHash('sha256');
  for (const f of ['Cargo.lock', 'gateway/rules/src/runtime.rs', 'gateway/rules/src/artifact.rs', 'gateway/host/src/rule_cmd.rs']) {
    host.update(fs.readFileSync(path.join(ROOT, f)));
  }
  const hostDigest = host.digest('hex');
  const out = { key, wasm: {}, rule: {}, log: [] };
  await Promise.all(Object.entries(JS_RULES).map(async ([name, source]) => {
    const wasm = path.join(CACHE, `${name}.wasm`);
    const b = await buildRule(source, wasm, { cache: path.join(CACHE, 'components') });
    out.log.push(`${name}: component ${fs.statSync(wasm).size} bytes${b.cached ? ' (cached)' : ''} in ${b.ms} ms`);
    const digest = crypto.createHash('sha256').update(fs.readFileSync(wasm)).update(`\0${name}\0${hostDigest}\0${key.public}`).digest('hex').slice(0, 24);
    const artifact = path.join(CACHE, `${name}-${digest}.rule`);
    if (!fs.existsSync(artifact)) {
      const t = Date.now();
      await run(HOST_BIN, ['rule', 'build', wasm, '--name', name, '-o', `${artifact}.tmp`], { env: { ...process.env, EDGEAUTH_RULE_SIGNING_KEY: key.secret, EDGEAUTH_CACHE_DIR: HOST_CACHE } });
      fs.renameSync(`${artifact}.tmp`, artifact);
      out.log.push(`${name}: artifact ${fs.statSync(artifact).size} bytes built in ${Date.now() - t} ms`);
    }
    out.wasm[name] = wasm;
    out.rule[name] = artifact;
    // Older builds of this rule (~28 MB each) are of no further use.
    for (const f of fs.readdirSync(CACHE)) {
      if (f.startsWith(`${name}-`) && f.endsWith('.rule') && path.join(CACHE, f) !== artifact) fs.rmSync(path.join(CACHE, f), { force: true });
    }
  }));
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // Which: `rules` (the examples), `template` (rule new --lang js), both by default.
  const which = process.argv.slice(2);
  if (!which.length || which.includes('rules')) for (const l of (await jsRules()).log) console.log(l);
  if (!which.length || which.includes('template')) for (const l of await jsTemplate()) console.log(l);
}
