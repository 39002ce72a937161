// The WIT's `command` variant as JavaScript values (what componentize-js
// lowers): `{ tag, val }`, JSON fields as text. Kept apart from index.js
// (which imports the host) so tests/e2e/95-js-rules can check, under Node,
// that these tags and fields are the generated typings' (types/).

/** Refuse the sign-in; the person sees `reason`. */
export const deny = (reason) => ({ tag: 'deny', val: String(reason) });
/** A namespaced claim (`https://example.com/roles`) with any JSON value. */
export const setClaim = (name, value) => ({ tag: 'set-claim', val: { name, value: JSON.stringify(value) } });
/** A header the rule entry's `headers` allows, on every request to the origin. */
export const setHeader = (name, value) => ({ tag: 'set-header', val: { name, value: String(value) } });
/** JSON merge patch (RFC 7386) of the app metadata. */
export const patchAppMetadata = (patch) => ({ tag: 'patch-app-metadata', val: JSON.stringify(patch) });
/** JSON merge patch (RFC 7386) of the user metadata. */
export const patchUserMetadata = (patch) => ({ tag: 'patch-user-metadata', val: JSON.stringify(patch) });
/** Send the browser to `url` first (then back to /.edgeauth/continue). */
export const redirect = (url) => ({ tag: 'redirect', val: { url } });
/** Restart the sign-in at the provider (`prompt=login` and/or `max_age`). */
export const requireReauth = ({ promptLogin = false, maxAge } = {}) =>
  ({ tag: 'require-reauth', val: { promptLogin, maxAge } });
/** A line in the gateway's log, applied with the other commands. */
export const logCommand = (level, message) => ({ tag: 'log', val: { level, message: String(message) } });

