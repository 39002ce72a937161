// The gateway's key-value store as the tests see it, under either runtime
// (tests/lib/runtime.mjs), as {key: base64 value}.
//
// - host (gateway/host/src/key_value.rs): `<state-dir>/kv/default.json` is a
//   journal, a header line and then one JSON line per change ({"k": key, "v":
//   base64} for a set, {"k": key} for a delete); a file without the header is
//   the older format, one JSON object {key: base64}, which the host still reads.
// - spin: Spin's default store, SQLite `<state-dir>/sqlite_key_value.db`,
//   table spin_key_value(store, key, value). Node 20 has no SQLite, so
//   python3's sqlite3 module reads and writes it.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { RUNTIME } from './runtime.mjs';

export const JOURNAL_HEADER = 'edgeauth-kv-journal 1\n';

export const kvFile = (stateDir) => (RUNTIME === 'spin'
  ? path.join(stateDir, 'sqlite_key_value.db')
  : path.join(stateDir, 'kv', 'default.json'));

const STORE = 'default';

// The table as Spin creates it (spin-key-value-sqlite), so a store written
// before Spin starts is one Spin opens as its own.
const SQLITE = `
import base64, json, sqlite3, sys
db, op, store = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=10)
c.execute("""CREATE TABLE IF NOT EXISTS spin_key_value (
  store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (store, key))""")
if op == "read":
    rows = c.execute("SELECT key, value FROM spin_key_value WHERE store = ?", (store,))
    print(json.dumps({k: base64.b64encode(v).decode() for k, v in rows}))
else:
    entries = json.load(sys.stdin)
    with c:
        c.execute("DELETE FROM spin_key_value WHERE store = ?", (store,))
        c.executemany("INSERT INTO spin_key_value (store, key, value) VALUES (?, ?, ?)",
                      [(store, k, base64.b64decode(v)) for k, v in entries.items()])
c.close()
`;

// Stores holding several rule artifacts (~300 KB each, base64) exceed
// execFileSync's default 1 MiB of output.
const sqlite = (stateDir, op, input) => execFileSync('python3', ['-c', SQLITE, kvFile(stateDir), op, STORE],
  { input, encoding: 'utf8', maxBuffer: 256 << 20 });

/** The store's live entries, {key: base64 value}; {} when there is no store yet. */
export function readKv(stateDir) {
  const file = kvFile(stateDir);
  if (!fs.existsSync(file)) return {};
  if (RUNTIME === 'spin') return JSON.parse(sqlite(stateDir, 'read'));
  const text = fs.readFileSync(file, 'utf8');
  if (!text.startsWith(JOURNAL_HEADER)) return JSON.parse(text);
  const entries = {};
  const lines = text.slice(JOURNAL_HEADER.length).split('\n');
  lines.pop(); // after the last newline: nothing, or a record torn by a crash
  for (const line of lines) {
    const r = JSON.parse(line);
    if (r.v === undefined) delete entries[r.k];
    else entries[r.k] = r.v;
  }
  return entries;
}

/**
 * Replace the store's entries with `entries` ({key: base64 value}); the
 * gateway must not be running on `stateDir`. The host's file is written in
 * the older single-object format, which it still reads.
 */
export function writeKv(stateDir, entries) {
  const file = kvFile(stateDir);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  if (RUNTIME === 'spin') sqlite(stateDir, 'write', JSON.stringify(entries));
  else fs.writeFileSync(file, JSON.stringify(entries));
}
