// Shared checks for the attack suites: fail-closed assertions, leak scans,
// bounded concurrency, memory readings, and a sign-in driven through a
// scripted (hostile) provider.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { CookieJar, request, setCookie, isClearing } from '../../lib/http.mjs';
import { CLIENT_SECRET } from '../../lib/stack.mjs';
import { SESSION, show } from '../../lib/gateway-flow.mjs';

export { show };

/** Run `fn(item, index)` over `items` with at most `n` in flight; results in order. */
export async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
  return out;
}

/** Collects failures instead of stopping at the first, so one run reports every bad variant. */
export class Failures {
  constructor(what) { this.what = what; this.list = []; this.count = 0; }
  check(ok, msg) { this.count++; if (!ok) this.list.push(msg); }
  done(max = 40) {
    assert.ok(this.list.length === 0,
      `${this.list.length} of ${this.count} ${this.what} failed closed incorrectly:\n${this.list.slice(0, max).join('\n')}${this.list.length > max ? `\n… and ${this.list.length - max} more` : ''}`);
  }
}

/** Secrets a gateway holds: none may appear in a body, a header the client sees, or the logs. */
export function secretsOf(...gateways) {
  const s = new Map([['oidc_client_secret', CLIENT_SECRET]]);
  for (const g of gateways) {
    for (const k of g.sessionKeys) s.set(`session key ${k.kid}`, k.spec.split(':')[1]);
    for (const k of g.assertionKeys) s.set(`assertion key ${k.kid}`, k.spec.split(':')[2]);
  }
  return s;
}

const JWT_RE = /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/;

/**
 * What in `text` is a secret or token. `secrets`: Map name -> value; `tokens`:
 * further values (ID tokens, codes, cookie values) that must not show.
 */
export function leaks(text, secrets, tokens = []) {
  const found = [];
  for (const [name, v] of secrets) if (v && text.includes(v)) found.push(name);
  for (const t of tokens) if (t && t.length >= 8 && text.includes(t)) found.push(`token ${t.slice(0, 12)}…`);
  const m = text.match(JWT_RE);
  if (m) found.push(`a JWT (${m[0].slice(0, 24)}…)`);
  return found;
}

export function assertNoLeak(text, secrets, tokens, label) {
  const l = leaks(text, secrets, tokens);
  assert.deepEqual(l, [], `${label}: leaked ${l.join(', ')}`);
}

/** The whole log of a started process (file on disk, not only the in-memory tail). */
export function processLog(proc) {
  try { return fs.readFileSync(proc.logFile, 'utf8'); } catch { return proc.output; }
}

/** Resident memory of a process in KiB. */
export function rssKb(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/);
  return m ? Number(m[1]) : 0;
}

/** A Set-Cookie that gives a session (not one that clears it). */
export function issuesSession(res) {
  const c = setCookie(res, SESSION);
  return Boolean(c && !isClearing(c) && c.value);
}

/**
 * Where a browser would go for this Location (WHATWG URL parsing strips tabs
 * and newlines, reads `\` as `/`), and whether that is off the gateway. Also
 * flags Locations that an app decoding them again would read as another host.
 */
export function locationProblem(raw, gwUrl) {
  if (raw === null || raw === undefined) return null;
  let u;
  try { u = new URL(raw, gwUrl); } catch { return `unparsable Location ${JSON.stringify(raw)}`; }
  if (u.origin !== new URL(gwUrl).origin) return `OFF-SITE Location ${JSON.stringify(raw)} -> ${u.origin}`;
  const rel = raw.startsWith(gwUrl) ? raw.slice(gwUrl.length) : raw;
  if (!rel.startsWith('/') || /^[/\\]{2}/.test(rel)) return `Location not a plain path: ${JSON.stringify(raw)}`;
  if (/[\\\x00-\x20\x7f]/.test(rel)) return `Location with backslash/control/space: ${JSON.stringify(raw)}`;
  let layer = rel;
  for (let i = 0; i < 3; i++) {
    let d;
    try { d = decodeURIComponent(layer); } catch { break; }
    if (d === layer) break;
    if (/^[/\\]{2}/.test(d) || /[\\\x00-\x1f\x7f]/.test(d)) {
      return `Location becomes another host/scheme after ${i + 1} decoding(s): ${JSON.stringify(raw)} -> ${JSON.stringify(d)}`;
    }
    layer = d;
  }
  return null;
}

/** Hrefs in an HTML page the gateway wrote; every one must stay on the gateway. */
export function hrefProblems(html, gwUrl) {
  const out = [];
  for (const m of html.matchAll(/\b(?:href|action|src)\s*=\s*"([^"]*)"/gi)) {
    const v = m[1].replace(/&amp;/g, '&').replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
    const p = locationProblem(v, gwUrl);
    if (p) out.push(`link ${p}`);
  }
  if (/<meta[^>]+http-equiv\s*=\s*"?refresh/i.test(html)) out.push('meta refresh in page');
  return out;
}

/**
 * Start a sign-in at `gw` whose issuer is `tenant` (a scripted provider), make
 * its token endpoint answer `spec(ctx)` for the code, and call the callback.
 * `spec` gets { nonce, state, params, tenant } and returns a response spec
 * (see hostile-idp.mjs) — usually { json: { id_token, token_type: 'Bearer' } }.
 */
export async function hostileSignIn(gw, tenant, spec, { rd = '/after', jar = new CookieJar(), callbackQuery } = {}) {
  const t0 = Date.now();
  const start = await request(`${gw.url}/.edgeauth/login?rd=${encodeURIComponent(rd)}`, { jar });
  assert.equal(start.status, 302, `login start: ${show(start)}`);
  const auth = new URL(start.location);
  assert.equal(`${auth.origin}${auth.pathname}`, `${tenant.issuer}/auth`, `login must go to the provider: ${show(start)}`);
  const params = auth.searchParams;
  const state = params.get('state');
  const nonce = params.get('nonce');
  const code = `c-${crypto.randomBytes(9).toString('base64url')}`;
  const ctx = { nonce, state, params, tenant, code };
  const answer = await spec(ctx);
  tenant.onCode(code, answer);
  const q = callbackQuery ? callbackQuery(ctx) : `code=${encodeURIComponent(code)}&state=${encodeURIComponent(state)}`;
  const t1 = Date.now();
  const cb = await request(`${gw.url}/.edgeauth/callback?${q}`, { jar, timeoutMs: 30000 });
  const t2 = Date.now();
  return { start, cb, jar, nonce, state, code, ms: t2 - t0, cbMs: t2 - t1, idToken: answer?.json?.id_token };
}

/** A normal sign-in at a scripted provider (valid RS256 token, `claims` override the defaults). */
export function validSignIn(gw, tenant, { rd = '/after', claims = {}, kid = 'rsa-1', jar } = {}) {
  return hostileSignIn(gw, tenant, async ({ nonce }) => tokenAnswer(await tenant.sign(tenant.claims(nonce, claims), { kid })), { rd, jar });
}

/** Token-endpoint answer carrying `id_token`. */
export const tokenAnswer = (idToken, extra = {}) => ({ json: { access_token: 'at-not-used', token_type: 'Bearer', expires_in: 300, id_token: idToken, ...extra } });

/** Percent-encode every byte of `s` (upper or lower hex). */
export function pctAll(s, lower = false) {
  const hex = [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
  return lower ? hex : hex.toUpperCase();
}

/** Percent-encode only the given characters of `s`. */
export function pctSome(s, chars, lower = false) {
  return [...s].map((c) => (chars.includes(c) ? pctAll(c, lower) : c)).join('');
}

export const elapsed = async (fn) => { const t0 = Date.now(); const v = await fn(); return [v, Date.now() - t0]; };
