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

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { componentize } from '@bytecodealliance/componentize-js';

const here = path.dirname(fileURLToPath(import.meta.url));
export const WIT = path.resolve(here, '..', '..', 'wit', 'plugin.wit');
export const DISABLED = ['stdio', 'random', 'clocks', 'http', 'fetch-event'];

function inputsHash(source) {
  const h = crypto.createHash('sha256');
  const pkg = JSON.parse(fs.readFileSync(path.join(here, '..', '..', 'node_modules', '@bytecodealliance', 'componentize-js', 'package.json'), 'utf8'));
  h.update(`componentize-js ${pkg.version}\0${DISABLED.join(',')}\0`);
  const dir = path.dirname(source);
  const files = [
    ...fs.readdirSync(dir).filter((f) => /\.(m?js|ts)$/.test(f)).map((f) => path.join(dir, f)),
    ...fs.readdirSync(here).filter((f) => f.endsWith('.js')).map((f) => path.join(here, f)),
    WIT,
  ].sort();
  for (const f of files) h.update(`${path.relative(dir, f)}\0`).update(fs.readFileSync(f)).update('\0');
  return h.digest('hex').slice(0, 24);
}

/** Builds `source` into the component `out`; returns { out, cached, ms }. */
export async function buildRule(source, out, { cache } = {}) {
  const started = Date.now();
  source = path.resolve(source);
  let cached;
  if (cache) {
    cached = path.join(cache, `${path.basename(path.dirname(source))}-${inputsHash(source)}.wasm`);
    if (fs.existsSync(cached)) {
      fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
      fs.copyFileSync(cached, out);
      return { out, cached: true, ms: Date.now() - started };
    }
  }
  const { component, imports } = await componentize({
    sourcePath: source,
    witPath: WIT,
    worldName: 'post-login',
    disableFeatures: DISABLED,
  });
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

if (process.argv[1] === fileURLToPath(import.meta.url)) {
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
