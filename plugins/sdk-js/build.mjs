// Builds a JavaScript rule into a component for `edgeauth rule build`:
//
//   node plugins/sdk-js/build.mjs path/to/rule.js -o rule.wasm [--cache DIR]
//
// It is componentize-js (the pinned @bytecodealliance/componentize-js) against
// wit/plugin.wit, world post-login, with every WASI feature the engine could
// use turned off, so the component imports only edgeauth:plugin/host; the
// SDK (index.js) gives the rule the host's clock and randomness instead. The
// same as:
//
//   npx componentize-js rule.js --wit wit/plugin.wit --world-name post-login \
//     --disable stdio random clocks http fetch-event -o rule.wasm
//
// With --cache DIR, a build whose inputs (the rule's directory's .js files,
// the SDK's, the WIT, the componentize-js version) did not change is copied
// from DIR instead of redone (~15-25 s each).
//
// componentize-js is the rule directory's own install if it has one (the
// package.json of `edgeauth rule new --lang js` pins it), else this
// repository's.

import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));
export const WIT = path.resolve(here, '..', '..', 'wit', 'plugin.wit');
export const DISABLED = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];
const SOURCE = /\.(m?js|ts)$/;

/**
 * The componentize-js install to build with: the rule directory's own
 * (`npm install` there; its package.json pins the version) or one above it,
 * else the one of the repository this SDK is in (`npm ci` there).
 */
function findComponentize(ruleDir) {
  for (const start of [ruleDir, here]) {
    for (let d = start; ; d = path.dirname(d)) {
      const dir = path.join(d, 'node_modules', '@bytecodealliance', 'componentize-js');
      if (fs.existsSync(path.join(dir, 'package.json'))) {
        return { dir, pkg: JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) };
      }
      if (path.dirname(d) === d) break;
    }
  }
  throw new Error(`@bytecodealliance/componentize-js is not installed: run \`npm install\` in ${ruleDir} (its package.json pins it) or \`npm ci\` in the edgeauth repository`);
}

async function loadComponentize({ dir, pkg }) {
  const entry = typeof pkg.exports?.import === 'string' ? pkg.exports.import : 'src/componentize.js';
  return (await import(pathToFileURL(path.join(dir, entry)).href)).componentize;
}

/**
 * Directories the rule's directory links to (`edgeauth rule new --lang js`
 * links `sdk` to this SDK). componentize-js shows the build one directory
 * and WASI refuses links leading out of it, so such a rule is built from a
 * copy (`stage`), the links replaced by what they point to.
 */
function linkedDirs(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!e.isSymbolicLink()) continue;
    const target = path.join(dir, e.name);
    let st;
    try {
      st = fs.statSync(target);
    } catch {
      throw new Error(`${target} links to ${fs.readlinkSync(target)}, which does not exist`);
    }
    if (st.isDirectory()) out.push(e.name);
  }
  return out.sort();
}

const sources = (dir) => fs.readdirSync(dir).filter((f) => SOURCE.test(f) && fs.statSync(path.join(dir, f)).isFile()).sort();

/**
 * What a build reads, as [name, file]: names as the build sees them, so the
 * same rule in another directory has the same key.
 */
function buildInputs(dir, links) {
  if (links.length) {
    // The rule's own tests (`*.test.js`, for node --test) are no part of its
    // component: editing them rebuilds nothing.
    return [
      ...sources(dir).filter((f) => !/\.test\.m?js$/.test(f)).map((f) => [f, path.join(dir, f)]),
      ...links.flatMap((l) => sources(path.join(dir, l)).map((f) => [`${l}/${f}`, path.join(dir, l, f)])),
      ['wit/plugin.wit', WIT],
    ];
  }
  // Built in place (the examples import ../../sdk-js/index.js).
  return [
    ...sources(dir).map((f) => path.join(dir, f)),
    ...fs.readdirSync(here).filter((f) => f.endsWith('.js')).map((f) => path.join(here, f)),
    WIT,
  ].sort().map((f) => [path.relative(dir, f), f]);
}

function inputsHash(version, inputs) {
  const h = crypto.createHash('sha256');
  h.update(`componentize-js ${version}\0${DISABLED.join(',')}\0`);
  for (const [name, file] of inputs) h.update(`${name}\0`).update(fs.readFileSync(file)).update('\0');
  return h.digest('hex').slice(0, 24);
}

/** Builds `source` into the component `out`; returns { out, cached, ms }. */
export async function buildRule(source, out, { cache } = {}) {
  const started = Date.now();
  source = path.resolve(source);
  const dir = path.dirname(source);
  const links = linkedDirs(dir);
  const inputs = buildInputs(dir, links);
  const found = findComponentize(dir);
  let cached;
  if (cache) {
    cached = path.join(cache, `${path.basename(dir)}-${inputsHash(found.pkg.version, inputs)}.wasm`);
    if (fs.existsSync(cached)) {
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      fs.copyFileSync(cached, out);
      return { out, cached: true, ms: Date.now() - started };
    }
  }
  const componentize = await loadComponentize(found);
  let stage;
  let sourcePath = source;
  if (links.length) {
    stage = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeauth-rule-build-'));
    for (const [name, file] of inputs) {
      if (name.startsWith('wit/')) continue;
      fs.mkdirSync(path.dirname(path.join(stage, name)), { recursive: true });
      fs.copyFileSync(file, path.join(stage, name));
    }
    sourcePath = path.join(stage, path.basename(source));
  }
  let component;
  let imports;
  try {
    ({ component, imports } = await componentize({
      sourcePath,
      witPath: WIT,
      worldName: 'post-login',
      disableFeatures: DISABLED,
    }));
  } finally {
    if (stage) fs.rmSync(stage, { recursive: true, force: true });
  }
  const foreign = (imports ?? []).map((i) => (Array.isArray(i) ? i[0] : String(i))).filter((n) => !n.startsWith('edgeauth:plugin/'));
  if (foreign.length) throw new Error(`${source}: the component imports ${foreign.join(', ')}; a rule may import only edgeauth:plugin/host`);
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, component);
  if (cached) {
    fs.mkdirSync(cache, { recursive: true });
    fs.writeFileSync(`${cached}.tmp`, component);
    fs.renameSync(`${cached}.tmp`, cached);
  }
  return { out, cached: false, ms: Date.now() - started };
}

// (Realpaths: a rule runs this through its `sdk` link, and Node gives
// import.meta.url with links resolved but argv[1] as typed.)
const isMain = process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { out: { type: 'string', short: 'o' }, cache: { type: 'string' } } });
  if (positionals.length !== 1 || !values.out) {
    console.error('usage: node plugins/sdk-js/build.mjs RULE.js -o RULE.wasm [--cache DIR]');
    process.exit(2);
  }
  try {
    const r = await buildRule(positionals[0], values.out, { cache: values.cache });
    console.log(`${r.out}: ${fs.statSync(r.out).size} bytes${r.cached ? ' (cached)' : ''} in ${r.ms} ms`);
  } catch (e) {
    console.error(`build failed: ${e.message ?? e}`);
    process.exit(1);
  }
}
