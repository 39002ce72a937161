// Small HTTP helpers for the tests: a cookie jar that behaves like a browser's
// (host-only cookies keyed by host name, not port; Path matching; Max-Age/Expires),
// fetch with manual redirects, and a raw-socket client for hostile requests that
// fetch cannot express (duplicate and mixed-case header lines, odd targets).

import net from 'node:net';

export class CookieJar {
  constructor() {
    /** @type {Map<string, {name:string,value:string,host:string,path:string,expires:number|null,httpOnly:boolean,secure:boolean,sameSite:string|null}>} */
    this.cookies = new Map();
  }

  static parseSetCookie(line) {
    const parts = line.split(';');
    const first = parts.shift();
    const eq = first.indexOf('=');
    if (eq <= 0) return null;
    const c = {
      name: first.slice(0, eq).trim(), value: first.slice(eq + 1).trim(),
      path: null, domain: null, maxAge: null, expires: null,
      httpOnly: false, secure: false, sameSite: null, attrs: {},
    };
    for (const p of parts) {
      const i = p.indexOf('=');
      const k = (i < 0 ? p : p.slice(0, i)).trim().toLowerCase();
      const v = i < 0 ? '' : p.slice(i + 1).trim();
      c.attrs[k] = v;
      if (k === 'path') c.path = v;
      else if (k === 'domain') c.domain = v.replace(/^\./, '').toLowerCase();
      else if (k === 'max-age') c.maxAge = Number(v);
      else if (k === 'expires') c.expires = Date.parse(v);
      else if (k === 'httponly') c.httpOnly = true;
      else if (k === 'secure') c.secure = true;
      else if (k === 'samesite') c.sameSite = v;
    }
    return c;
  }

  /** Store the Set-Cookie headers of a response for request URL `url`. */
  store(url, headers) {
    const u = new URL(url);
    const lines = typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [].concat(headers['set-cookie'] ?? []);
    for (const line of lines) {
      const c = CookieJar.parseSetCookie(line);
      if (!c) continue;
      let path = c.path;
      if (!path || !path.startsWith('/')) {
        const dir = u.pathname.slice(0, u.pathname.lastIndexOf('/'));
        path = dir || '/';
      }
      // Domain attributes on IP hosts: treat as host-only (that is what browsers do
      // for an exact match, and reject otherwise).
      if (c.domain && c.domain !== u.hostname) continue;
      let expires = null;
      if (c.maxAge !== null && !Number.isNaN(c.maxAge)) expires = Date.now() + c.maxAge * 1000;
      else if (c.expires !== null && !Number.isNaN(c.expires)) expires = c.expires;
      const key = `${u.hostname}|${path}|${c.name}`;
      if (expires !== null && expires <= Date.now()) { this.cookies.delete(key); continue; }
      this.cookies.set(key, {
        name: c.name, value: c.value, host: u.hostname, path, expires,
        httpOnly: c.httpOnly, secure: c.secure, sameSite: c.sameSite,
      });
    }
  }

  /** Cookies that would be sent to `url`. */
  matching(url) {
    const u = new URL(url);
    const now = Date.now();
    const out = [];
    for (const [key, c] of this.cookies) {
      if (c.expires !== null && c.expires <= now) { this.cookies.delete(key); continue; }
      if (c.host !== u.hostname) continue;
      if (c.secure && u.protocol !== 'https:') continue;
      const p = u.pathname;
      const pathOk = p === c.path || (p.startsWith(c.path) && (c.path.endsWith('/') || p[c.path.length] === '/'));
      if (!pathOk) continue;
      out.push(c);
    }
    out.sort((a, b) => b.path.length - a.path.length);
    return out;
  }

  header(url) {
    return this.matching(url).map((c) => `${c.name}=${c.value}`).join('; ');
  }

  get(host, name) {
    for (const c of this.cookies.values()) if (c.host === host && c.name === name) return c;
    return undefined;
  }

  set(host, name, value, path = '/') {
    this.cookies.set(`${host}|${path}|${name}`, { name, value, host, path, expires: null, httpOnly: true, secure: false, sameSite: 'Lax' });
  }

  delete(host, name) {
    for (const [k, c] of this.cookies) if (c.host === host && c.name === name) this.cookies.delete(k);
  }

  clone() {
    const j = new CookieJar();
    for (const [k, c] of this.cookies) j.cookies.set(k, { ...c });
    return j;
  }
}

/**
 * fetch with redirect: 'manual' and an optional cookie jar.
 * Returns { status, headers, body (string), location (absolute or null), url, setCookies }.
 */
export async function request(url, { method = 'GET', headers = {}, body, jar, accept = 'text/html', timeoutMs = 15000 } = {}) {
  const h = new Headers(headers);
  if (accept && !h.has('accept')) h.set('accept', accept);
  if (jar) {
    const cookie = jar.header(url);
    if (cookie && !h.has('cookie')) h.set('cookie', cookie);
  }
  const res = await fetch(url, {
    method, headers: h, body, redirect: 'manual',
    signal: AbortSignal.timeout(timeoutMs),
    ...(body && typeof body.getReader === 'function' ? { duplex: 'half' } : {}),
  });
  if (jar) jar.store(url, res.headers);
  const text = await res.text();
  const loc = res.headers.get('location');
  return {
    status: res.status,
    headers: res.headers,
    body: text,
    location: loc === null ? null : new URL(loc, url).href,
    rawLocation: loc,
    url,
    setCookies: res.headers.getSetCookie(),
  };
}

/** The parsed Set-Cookie of the response for cookie `name` (last one wins), or undefined. */
export function setCookie(res, name) {
  let found;
  for (const line of res.setCookies) {
    const c = CookieJar.parseSetCookie(line);
    if (c && c.name === name) found = { ...c, raw: line };
  }
  return found;
}

/** True if the Set-Cookie line deletes the cookie. */
export function isClearing(c) {
  if (!c) return false;
  if (c.maxAge !== null && c.maxAge <= 0) return true;
  if (c.expires !== null && c.expires <= Date.now()) return true;
  return false;
}

/**
 * Raw HTTP/1.1 request over a fresh TCP connection (Connection: close).
 * `headers` is a list of [name, value] pairs sent verbatim, in order.
 * `target` is the request-target sent verbatim (can be anything).
 */
export function rawRequest(baseUrl, { method = 'GET', target = '/', headers = [], body = null, timeoutMs = 15000 } = {}) {
  const u = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const chunks = [];
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`raw request timed out: ${method} ${target}`)); }, timeoutMs);
    sock.on('connect', () => {
      // A Host among `headers` replaces the URL's (send two to test duplicates).
      const lines = [`${method} ${target} HTTP/1.1`];
      if (!headers.some(([k]) => k.toLowerCase() === 'host')) lines.push(`Host: ${u.host}`);
      for (const [k, v] of headers) lines.push(`${k}: ${v}`);
      const b = body === null ? null : Buffer.from(body);
      if (b) lines.push(`Content-Length: ${b.length}`);
      lines.push('Connection: close', '', '');
      sock.write(lines.join('\r\n'));
      if (b) sock.write(b);
    });
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', (e) => { clearTimeout(timer); reject(e); });
    sock.on('close', () => {
      clearTimeout(timer);
      try { resolve(parseRawResponse(Buffer.concat(chunks))); } catch (e) { reject(e); }
    });
  });
}

function parseRawResponse(buf) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`incomplete HTTP response (${buf.length} bytes): ${buf.toString('latin1').slice(0, 200)}`);
  const head = buf.subarray(0, end).toString('latin1').split('\r\n');
  const statusLine = head.shift();
  const m = statusLine.match(/^HTTP\/1\.[01] (\d{3})/);
  if (!m) throw new Error(`bad status line: ${statusLine}`);
  const headers = [];
  for (const l of head) {
    const i = l.indexOf(':');
    headers.push([l.slice(0, i).trim().toLowerCase(), l.slice(i + 1).trim()]);
  }
  const get = (n) => headers.find(([k]) => k === n)?.[1];
  let body = buf.subarray(end + 4);
  if ((get('transfer-encoding') || '').toLowerCase().includes('chunked')) {
    const out = [];
    let pos = 0;
    for (;;) {
      const le = body.indexOf('\r\n', pos);
      if (le < 0) break;
      const size = parseInt(body.subarray(pos, le).toString('latin1'), 16);
      if (!size) break;
      out.push(body.subarray(le + 2, le + 2 + size));
      pos = le + 2 + size + 2;
    }
    body = Buffer.concat(out);
  }
  return { status: Number(m[1]), headers, header: get, body: body.toString('utf8') };
}
