// Running a rule's function under Node, without building WebAssembly: the
// rule's unit tests (`node --test`) call it on sample events and assert on
// the commands it returns.
//
//   import { fixture, loadRule, run } from './sdk/testing.mjs';
//   const { rule } = await loadRule(new URL('./rule.js', import.meta.url));
//   const { commands, logs } = run(rule, fixture(new URL('./fixtures/first-login.json', import.meta.url)), { nowMs: 1_800_000_000_000 });
//
// This module is also the stand-in for the host the rule imports
// ('edgeauth:plugin/host@0.1.0'): importing it points that specifier here
// (a Node module hook), so the SDK's index.js and the rule load under Node.
// The clock, randomness, HTTP responder and captured log lines are `host`'s,
// set by `run` for each call.
//
// What it does not do: the gateway's checks of the returned commands
// (reserved claims and headers, the rule entry's allow lists, output size),
// fuel and memory caps. `edgeauth rule test` runs the built component with
// all of those; these tests are for the rule's own logic.
//
// `.mjs`, not `.js`: Node-only, never part of a component (build.mjs hashes
// the SDK's `.js` files for its cache).

import fs from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes as nodeRandomBytes } from 'node:crypto';

const HOST_IMPORT = 'edgeauth:plugin/host@0.1.0';

// Hooks run apart from this thread: the one fact they need, this module's
// URL, goes in as text.
register('data:text/javascript,' + encodeURIComponent(`
export async function resolve(specifier, context, next) {
  if (specifier === ${JSON.stringify(HOST_IMPORT)}) {
    return { url: ${JSON.stringify(import.meta.url)}, shortCircuit: true };
  }
  return next(specifier, context);
}`));

/** The clock a call sees unless `run` is given `nowMs`: 2026-12-07T09:30:00Z. */
export const DEFAULT_NOW_MS = 1_796_635_800_000;

const defaultRandomBytes = (len) => new Uint8Array(nodeRandomBytes(len));
const noHttp = (request) => {
  throw { tag: 'forbidden-host', val: `${request.url}: no HTTP responder in this test (run(..., { http }))` };
};

/**
 * The stand-in host's state. `run` sets all of it for each call (what a
 * call is not given, to the defaults: nothing carries over from the last
 * test); tests of the SDK itself may set it directly.
 */
export const host = {
  /** `now-ms` (a bigint, as the WIT's u64 arrives). */
  now: BigInt(DEFAULT_NOW_MS),
  /** `random-bytes`: (len) => Uint8Array. */
  randomBytes: defaultRandomBytes,
  /** `http-fetch`: (request) => response; throws the WIT's `http-error` by default. */
  http: noHttp,
  /** `log` lines, as `level: message`. */
  logs: [],
};

// --- The host's functions (what the rule's import resolves to) -------------

export function log(level, message) {
  host.logs.push(`${level}: ${message}`);
}
export function nowMs() {
  return host.now;
}
export function randomBytes(len) {
  return host.randomBytes(len);
}
export function httpFetch(request) {
  return host.http(request);
}

// --- Loading a rule and calling it ------------------------------------------

/**
 * Imports the rule module at `url` (a file URL or path) with the stand-in
 * host in place. A static `import` of the rule would not do: Node resolves
 * every static import before this module's hook exists.
 */
export async function loadRule(url) {
  return import(url instanceof URL ? url.href : pathToFileURL(path.resolve(url)).href);
}

/** What a rule's failure looks like here: the sign-in would fail with `message` as the rule's error. */
export class RuleFailed extends Error {
  name = 'RuleFailed';
}

/**
 * Calls `rule` (the module's `rule` export, from `defineRule`) on `event`
 * (from `fixture` or `toEvent`) as the gateway would: { commands, logs }.
 * Options: `nowMs` (the host's clock), `config` (the rule entry's config,
 * instead of the event's), `randomBytes`, `http` (a responder).
 */
export function run(rule, event, { nowMs: now = DEFAULT_NOW_MS, config, randomBytes: random, http } = {}) {
  host.now = BigInt(now);
  host.logs = [];
  host.randomBytes = random ?? defaultRandomBytes;
  host.http = http ?? noHttp;
  const called = config === undefined ? event : { ...event, config: JSON.stringify(config) };
  let commands;
  try {
    commands = rule.onLogin(called);
  } catch (e) {
    // defineRule throws the rule's error as a string (what componentize-js
    // makes the export's `err`).
    throw new RuleFailed(typeof e === 'string' ? e : String(e?.message ?? e));
  }
  return { commands, logs: host.logs };
}

// --- Event files (the shape `edgeauth rule test --event` reads) -------------
//
// An event file is the WIT `event` in snake_case with JSON fields as JSON
// values; a rule gets the WIT's JavaScript lowering (camelCase, JSON fields
// as text, u64 as bigint, absent options as undefined). Missing fields take
// the defaults the gateway's event type gives them (plugins/contract
// event.rs), and an unknown field is refused as `rule test` refuses it:
// `emailVerified` for `email_verified` would otherwise be dropped and a
// test pass for the wrong reason.

const S = 'string';
const OPT_S = 'option<string>';
const B = 'bool';
const U64 = 'u64';
const JSONV = 'json';
const LIST_S = 'list<string>';
const KIND = 'connection-kind';
const PAIRS = 'option<list<tuple<string, string>>>';
const MAP = 'secrets';

const IDENTITY = { connection: S, user_id: S, profile: JSONV };
const EVENT = {
  tenant_id: S,
  rule_name: S,
  config: JSONV,
  user: {
    sub: S, email: OPT_S, email_verified: B, name: OPT_S, picture: OPT_S, groups: LIST_S,
    identities: [IDENTITY], app_metadata: JSONV, user_metadata: JSONV,
  },
  connection: { id: S, kind: KIND, display_name: S },
  request: { ip: OPT_S, user_agent: OPT_S, host: S, path: S, method: S, accepted_languages: LIST_S },
  transaction: { first_login: B, login_count: U64, return_url: S, correlation_id: S, reauthenticated: B, resumed: PAIRS },
  secrets: MAP,
};
/** The connection of a gateway configured without `connections` (Rust: Connection::default). */
const DEFAULT_CONNECTION = { id: 'default', kind: 'oidc', display_name: 'Identity provider' };
const KINDS = ['oidc', 'oauth2', 'saml'];

const camel = (name) => name.replace(/_(.)/g, (_, c) => c.toUpperCase());
const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function fail(at, want, v) {
  throw new TypeError(`not a login event: ${at || 'the event'}: expected ${want}, got ${JSON.stringify(v)}`);
}

function lower(shape, v, at, defaults = {}) {
  if (Array.isArray(shape)) {
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) fail(at, 'a list', v);
    return v.map((item, i) => lower(shape[0], item, `${at}[${i}]`));
  }
  if (isObject(shape)) {
    if (v === undefined || v === null) v = {};
    if (!isObject(v)) fail(at, 'an object', v);
    const unknown = Object.keys(v).filter((k) => !(k in shape)).map((k) => (at ? `${at}.${k}` : k));
    if (unknown.length) {
      throw new TypeError(`unknown field${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')} (the event's fields are those of wit/plugin.wit's \`event\`, in snake_case)`);
    }
    return Object.fromEntries(Object.entries(shape).map(([k, s]) => {
      const here = at ? `${at}.${k}` : k;
      const given = v[k] === undefined && k in defaults ? defaults[k] : v[k];
      return [camel(k), lower(s, given, here, k === 'connection' ? DEFAULT_CONNECTION : {})];
    }));
  }
  switch (shape) {
    case S:
      if (v === undefined) return '';
      if (typeof v !== 'string') fail(at, 'a string', v);
      return v;
    case OPT_S:
      if (v === undefined || v === null) return undefined;
      if (typeof v !== 'string') fail(at, 'a string or null', v);
      return v;
    case B:
      if (v === undefined) return false;
      if (typeof v !== 'boolean') fail(at, 'true or false', v);
      return v;
    case U64:
      if (v === undefined) return 0n;
      if (!Number.isSafeInteger(v) || v < 0) fail(at, 'a whole number >= 0', v);
      return BigInt(v);
    case JSONV:
      // The gateway's json_text: absent (null) is `{}`.
      return v === undefined || v === null ? '{}' : JSON.stringify(v);
    case LIST_S:
      if (v === undefined || v === null) return [];
      if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) fail(at, 'a list of strings', v);
      return v;
    case KIND:
      if (!KINDS.includes(v)) fail(at, KINDS.join(' or '), v);
      return v;
    case PAIRS:
      if (v === undefined || v === null) return undefined;
      if (!Array.isArray(v) || !v.every((p) => Array.isArray(p) && p.length === 2 && p.every((s) => typeof s === 'string'))) {
        fail(at, 'null or a list of [name, value] pairs of strings', v);
      }
      return v.map(([k, val]) => [k, val]);
    case MAP:
      if (v === undefined || v === null) return [];
      if (!isObject(v) || !Object.values(v).every((s) => typeof s === 'string')) fail(at, 'an object of strings by name', v);
      // By name, as the gateway's (ordered) map gives them.
      return Object.keys(v).sort().map((name) => ({ name, value: v[name] }));
    default:
      throw new Error(`testing.mjs: unknown field type ${shape}`);
  }
}

/** The event a rule gets, from the JSON value of an event file. */
export function toEvent(json) {
  return lower(EVENT, json, '');
}

/** The event a rule gets, from an event file (a path or file URL). */
export function fixture(file) {
  const text = fs.readFileSync(file, 'utf8');
  let json;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON: ${e.message}`);
  }
  try {
    return toEvent(json);
  } catch (e) {
    throw new Error(`${file}: ${e.message}`);
  }
}
