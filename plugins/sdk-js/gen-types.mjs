// Generates the SDK's contract typings (types/) from wit/plugin.wit with
// jco's own type generator, so the JavaScript contract has one definition:
// the WIT. `node plugins/sdk-js/gen-types.mjs --check` fails when the
// committed files differ from what the WIT gives (tests/e2e/95-js-rules runs it).
//
// (The generator is called with the WIT's text: `jco types <path>` of the
// pinned jco cannot read paths, its WASI shim having no preopened directory.)

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTypes, $init } from '@bytecodealliance/jco-transpile/component';

const here = path.dirname(fileURLToPath(import.meta.url));
const wit = path.join(here, '..', '..', 'wit', 'plugin.wit');
const outDir = path.join(here, 'types');

/** The files the WIT gives: relative path -> text. */
export async function generated() {
  await $init;
  const files = generateTypes('rule', {
    wit: { tag: 'source', val: fs.readFileSync(wit, 'utf8') },
    world: 'post-login',
    // Guest side: what a rule imports (host) and must export (rule).
    guest: true,
    features: { tag: 'list', val: [] },
  });
  const header = '// Generated from wit/plugin.wit by plugins/sdk-js/gen-types.mjs: do not edit.\n';
  return Object.fromEntries(files.map(([name, bytes]) => [name, header + new TextDecoder().decode(bytes)]));
}

/** Committed files that differ from (or are missing in) the generated set, and extra ones. */
export async function drift() {
  const want = await generated();
  const problems = [];
  for (const [name, text] of Object.entries(want)) {
    const file = path.join(outDir, name);
    if (!fs.existsSync(file)) problems.push(`${name} is missing`);
    else if (fs.readFileSync(file, 'utf8') !== text) problems.push(`${name} differs from wit/plugin.wit`);
  }
  const have = fs.existsSync(outDir) ? fs.readdirSync(outDir, { recursive: true }).filter((f) => f.endsWith('.d.ts')) : [];
  for (const f of have) if (!(f in want)) problems.push(`${f} is not generated from the WIT any more`);
  return problems;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--check')) {
    const problems = await drift();
    if (problems.length) {
      console.error(`plugins/sdk-js/types is out of date (run node plugins/sdk-js/gen-types.mjs):\n  ${problems.join('\n  ')}`);
      process.exit(1);
    }
    console.log('plugins/sdk-js/types matches wit/plugin.wit');
  } else {
    fs.rmSync(outDir, { recursive: true, force: true });
    for (const [name, text] of Object.entries(await generated())) {
      fs.mkdirSync(path.dirname(path.join(outDir, name)), { recursive: true });
      fs.writeFileSync(path.join(outDir, name), text);
    }
    console.log(`wrote ${outDir}`);
  }
}
