// Send a raw request through the gateway and find what (if anything) the
// recording origin got for it, matched by a probe header the gateway forwards
// untouched. Used by the path-confusion and allowlist suites.

import { rawRequest } from '../../lib/http.mjs';
import { waitFor } from '../../lib/procs.mjs';

let seq = 0;

/** Index of the origin's records by X-Probe value; refreshed on demand. */
export class OriginIndex {
  constructor(origin) { this.origin = origin; this.byProbe = new Map(); this.seen = 0; }
  async refresh() {
    const all = await this.origin.requests();
    for (const r of all.slice(this.seen >= all.length ? 0 : this.seen)) {
      const p = r.headers['x-probe'];
      if (p) this.byProbe.set(String(p), r);
    }
    this.seen = all.length;
  }
  async get(probe) {
    if (!this.byProbe.has(probe)) await this.refresh();
    return this.byProbe.get(probe);
  }
}

/**
 * { status, headers, reached (origin record or undefined), probe }.
 * `headers` are extra [name, value] lines; errors (connection closed by the
 * host for an unparsable request) come back as status 0.
 */
export async function probe(gwUrl, index, { method = 'GET', target, headers = [], cookie, accept = 'text/html', body = null }) {
  const id = `p${process.pid}-${++seq}`;
  const lines = [['X-Probe', id], ...(accept ? [['Accept', accept]] : []), ...headers];
  if (cookie) lines.push(['Cookie', `edgeauth_session=${cookie}`]);
  let r;
  try {
    r = await rawRequest(gwUrl, { method, target, headers: lines, body, timeoutMs: 10000 });
  } catch (e) {
    r = { status: 0, header: () => undefined, body: '', headers: [], error: e.message };
  }
  // The origin may still be writing its record when the gateway has answered.
  const fromOrigin = r.header('x-origin') !== undefined;
  let reached = await index.get(id);
  if (!reached && fromOrigin) {
    reached = await waitFor(async () => { await index.refresh(); return index.byProbe.get(id); },
      { timeoutMs: 5000, what: `the origin's record of probe ${id}` });
  }
  return { ...r, reached, fromOrigin, probe: id };
}

/** RFC 3986 dot-segment removal plus `//` collapse, on a decoded path. */
export function resolvePath(p) {
  const segs = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') { segs.pop(); continue; }
    segs.push(s);
  }
  return `/${segs.join('/')}${p.endsWith('/') && segs.length ? '/' : ''}`;
}

function decodeOnce(p) {
  try { return decodeURIComponent(p); } catch { return p; }
}

/**
 * How origins could read a forwarded path: as is; decoded once; decoded with
 * `\` as `/` (Windows/IIS); after NFKC (Unicode-normalizing frameworks);
 * each then dot-resolved. Returns the distinct readings.
 */
export function originReadings(path) {
  const raw = path.split('?')[0];
  const dec = decodeOnce(raw);
  const views = [raw, dec, dec.replace(/\\/g, '/'), dec.normalize('NFKC'), dec.normalize('NFKC').replace(/\\/g, '/')];
  return [...new Set(views.map(resolvePath))];
}
