// edgeauth rule SDK for JavaScript. A rule module does:
//
//   import { defineRule, deny } from '<path to>/plugins/sdk-js/index.js';
//   export const rule = defineRule((login) => login.user.emailVerified ? [] : [deny('verify your email')]);
//
// and is built with componentize-js against wit/plugin.wit, world
// post-login, with every WASI feature disabled (plugins/README.md): the
// rule then imports nothing but `edgeauth:plugin/host`.
//
// The contract's types are generated from the WIT (types/, gen-types.mjs);
// this file only adds conveniences over them.

import { log as hostLog, nowMs, randomBytes } from 'edgeauth:plugin/host@0.1.0';

// --- The engine's clock and randomness, from the host -----------------------
//
// Built without WASI, the engine has no clock and no entropy of its own:
// `Date.now()` would return the time the rule was *built* (the snapshot's)
// and `Math.random()` the same sequence at every sign-in. The rule's only
// clock and entropy are the host's `now-ms` and `random-bytes`, so the
// globals are pointed at those. They run when called, never at build time
// (the build's snapshot has no host to call).

const BuildDate = Date;
const hostNow = () => Number(nowMs());

class HostDate extends BuildDate {
  constructor(...args) {
    if (args.length === 0) super(hostNow());
    else super(...args);
  }
  static now() {
    return hostNow();
  }
}
globalThis.Date = HostDate;

function fillRandom(bytes) {
  for (let off = 0; off < bytes.length; off += 1024) {
    const chunk = randomBytes(Math.min(1024, bytes.length - off));
    bytes.set(chunk, off);
  }
  return bytes;
}

Math.random = () => {
  const b = fillRandom(new Uint8Array(7));
  // 53 random bits as a float in [0, 1).
  let hi = ((b[0] << 13) | (b[1] << 5) | (b[2] >> 3)) >>> 0; // 21 bits
  let lo = ((b[3] << 24) | (b[4] << 16) | (b[5] << 8) | b[6]) >>> 0; // 32 bits
  return (hi * 2 ** 32 + lo) / 2 ** 53;
};

if (globalThis.crypto && typeof globalThis.crypto.getRandomValues === 'function') {
  const getRandomValues = (view) => {
    fillRandom(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    return view;
  };
  try {
    Object.defineProperty(globalThis.crypto, 'getRandomValues', { value: getRandomValues });
  } catch {
    // A frozen `crypto`: leave it (a rule should use randomBytes then).
  }
}

// --- Commands (the WIT's `command` variant): commands.js --------------------

export { deny, setClaim, setHeader, patchAppMetadata, patchUserMetadata, redirect, requireReauth, logCommand } from './commands.js';

/** Logs right away through the host (also when the rule then fails). */
export function log(level, message) {
  hostLog(level, String(message));
}

// --- The event, with its JSON fields parsed ---------------------------------

function parse(text, what) {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`${what} is not JSON: ${e.message}`);
  }
}

/** The event as a rule wants it: JSON fields as values, a few helpers. */
export function toLogin(event) {
  const user = event.user;
  return {
    tenantId: event.tenantId,
    ruleName: event.ruleName,
    config: parse(event.config, 'config'),
    user: {
      ...user,
      appMetadata: parse(user.appMetadata, 'app metadata'),
      userMetadata: parse(user.userMetadata, 'user metadata'),
      identities: user.identities.map((i) => ({ ...i, profile: parse(i.profile, 'profile') })),
    },
    connection: event.connection,
    request: event.request,
    transaction: { ...event.transaction, loginCount: Number(event.transaction.loginCount) },
    secrets: Object.fromEntries(event.secrets.map((s) => [s.name, s.value])),
    /** The email's domain (lower-case), only if the provider verified the email. */
    verifiedEmailDomain() {
      if (!user.emailVerified || !user.email) return undefined;
      const at = user.email.lastIndexOf('@');
      return at < 0 ? undefined : user.email.slice(at + 1).toLowerCase();
    },
    /** A field the browser brought back to the continue endpoint. */
    resumed(field) {
      return event.transaction.resumed?.find(([k]) => k === field)?.[1];
    },
  };
}

/**
 * The `rule` export from a function of the parsed login returning commands.
 * A thrown exception fails the sign-in as the rule's error (its message is
 * logged and becomes the audit line's detail) instead of a bare trap.
 */
export function defineRule(onLogin) {
  return {
    onLogin(event) {
      let commands;
      try {
        commands = onLogin(toLogin(event));
      } catch (e) {
        const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
        // Thrown as a string: componentize-js turns a thrown string into
        // the export's `err`; anything else would trap without a word.
        throw message;
      }
      if (!Array.isArray(commands)) throw `the rule returned ${typeof commands}, not an array of commands`;
      return commands;
    },
  };
}
