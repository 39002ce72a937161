// A hostile tenant rule the Rust SDK cannot produce: one core module with
// several linear memories (components made of several core modules, e.g.
// by componentize-js, have several memories too). `on-login` grows each
// extra memory by `growBytes`, then allows the sign-in. The module carries
// the post-login world's type information copied from an SDK-built rule
// (its `component-type:*` custom section), so `edgeauth rule build` wraps,
// validates, precompiles and signs it like any other rule.

import fs from 'node:fs';

const PAGE = 64 * 1024;
const I32 = 0x7f;

function uleb(n) {
  const out = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return out;
}

function sleb(n) {
  const out = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && !(b & 0x40)) || (n === -1 && (b & 0x40))) return [...out, b];
    out.push(b | 0x80);
  }
}

const name = (s) => { const b = [...Buffer.from(s, 'utf8')]; return [...uleb(b.length), ...b]; };
const vec = (items) => [...uleb(items.length), ...items.flat()];
const section = (id, body) => [id, ...uleb(body.length), ...body];
const body = (code) => { const b = [0 /* no locals */, ...code, 0x0b /* end */]; return [...uleb(b.length), ...b]; };

/** The raw `component-type:*` custom section(s) of a core module. */
function componentTypeSections(wasm) {
  const out = [];
  let at = 8;
  const read = () => { let n = 0; let shift = 0; let b; do { b = wasm[at++]; n |= (b & 0x7f) << shift; shift += 7; } while (b & 0x80); return n >>> 0; };
  while (at < wasm.length) {
    const start = at;
    const id = wasm[at++];
    const size = read();
    const end = at + size;
    if (id === 0) {
      const len = read();
      if (wasm.subarray(at, at + len).toString('utf8').startsWith('component-type')) out.push(wasm.subarray(start, end));
    }
    at = end;
  }
  if (!out.length) throw new Error('the SDK-built rule has no component-type section');
  return out;
}

/**
 * The rule module: memory 0 (64 KiB, exported for the canonical ABI) and
 * `extra` memories that `on-login` grows by `growBytes` each.
 */
export function manyMemoriesRule({ extra, growBytes, typesFrom }) {
  const types = section(1, vec([
    [0x60, ...vec([[I32], [I32], [I32], [I32]]), ...vec([[I32]])], // cabi_realloc
    [0x60, ...vec([[I32]]), ...vec([[I32]])], // on-login(event*) -> result*
  ]));
  const funcs = section(3, vec([[0], [1]]));
  const memories = section(5, vec(Array.from({ length: extra + 1 }, (_, i) => [0x00, ...uleb(i === 0 ? 1 : 0)])));
  // Bump allocator state for the event the host writes into memory 0.
  const globals = section(6, vec([[I32, 0x01, 0x41, ...sleb(1024), 0x0b]]));
  const exports = section(7, vec([
    [...name('memory'), 0x02, 0],
    [...name('cabi_realloc'), 0x00, 0],
    [...name('edgeauth:plugin/rule@0.1.0#on-login'), 0x00, 1],
  ]));
  const realloc = body([
    0x23, 0, // global.get 0: the result
    0x23, 0, 0x20, 3, 0x41, 7, 0x6a, 0x41, ...sleb(-8), 0x71, 0x6a, 0x24, 0, // heap += align8(new_size)
    0x23, 0, 0x41, ...sleb(PAGE), 0x4b, 0x04, 0x40, 0x00, 0x0b, // past memory 0: unreachable
  ]);
  const grow = [];
  for (let m = 1; m <= extra; m++) {
    // memory.grow m by growBytes; a refused growth traps
    grow.push(0x41, ...sleb(growBytes / PAGE), 0x40, ...uleb(m), 0x41, ...sleb(-1), 0x46, 0x04, 0x40, 0x00, 0x0b);
  }
  // ok(empty list): the zeroed result area at 16
  const onLogin = body([...grow, 0x41, 16]);
  const code = section(10, vec([realloc, onLogin]));
  const custom = componentTypeSections(fs.readFileSync(typesFrom)).flatMap((s) => [...s]);
  return Buffer.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...types, ...funcs, ...memories, ...globals, ...exports, ...code, ...custom,
  ]);
}
