// The host's key-value store as the tests see it (gateway/host/src/key_value.rs):
// `<state-dir>/kv/default.json` is a journal, a header line and then one JSON
// line per change ({"k": key, "v": base64} for a set, {"k": key} for a delete);
// a file without the header is the older format, one JSON object
// {key: base64}, which the host still reads (and tests may write as a fixture).

import fs from 'node:fs';
import path from 'node:path';

export const JOURNAL_HEADER = 'edgeauth-kv-journal 1\n';

export const kvFile = (stateDir) => path.join(stateDir, 'kv', 'default.json');

/** The store's live entries, {key: base64 value}; {} when there is no file. */
export function readKv(stateDir) {
  const file = kvFile(stateDir);
  if (!fs.existsSync(file)) return {};
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
