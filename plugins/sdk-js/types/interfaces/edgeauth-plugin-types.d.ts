// Generated from wit/plugin.wit by plugins/sdk-js/gen-types.mjs: do not edit.
declare module 'edgeauth:plugin/types@0.1.0' {
  /**
   * A JSON document as UTF-8 text. Inputs are always valid JSON; outputs
   * must be (the gateway parses them and refuses anything else).
   */
  export type Json = string;
  /**
   * How the identity provider was reached.
   * # Variants
   * 
   * ## `"oidc"`
   * 
   * ## `"oauth2"`
   * 
   * ## `"saml"`
   */
  export type ConnectionKind = 'oidc' | 'oauth2' | 'saml';
  /**
   * The identity provider connection this sign-in used.
   */
  export interface Connection {
    /**
     * Stable identifier in the tenant's configuration.
     */
    id: string,
    kind: ConnectionKind,
    /**
     * Name shown to people, e.g. on an IdP chooser.
     */
    displayName: string,
  }
  /**
   * One account of the person at one identity provider.
   */
  export interface LinkedIdentity {
    /**
     * `connection.id` of the provider.
     */
    connection: string,
    /**
     * The provider's subject identifier for the person.
     */
    userId: string,
    /**
     * The provider's profile claims as it sent them (a JSON object),
     * minus protocol claims (nonce, at_hash, c_hash).
     */
    profile: Json,
  }
  /**
   * The normalized person.
   */
  export interface User {
    /**
     * Subject identifier, unique per tenant.
     */
    sub: string,
    email?: string,
    /**
     * True only if the provider asserted the email is verified.
     */
    emailVerified: boolean,
    name?: string,
    /**
     * URL of a profile picture.
     */
    picture?: string,
    groups: Array<string>,
    identities: Array<LinkedIdentity>,
    /**
     * Metadata rules and operators manage; a JSON object (`{}` if none).
     */
    appMetadata: Json,
    /**
     * Metadata about the person's own preferences; a JSON object.
     */
    userMetadata: Json,
  }
  /**
   * The browser request that completed the sign-in.
   */
  export interface RequestInfo {
    /**
     * Client IP address, if the platform reports it.
     */
    ip?: string,
    userAgent?: string,
    /**
     * Host the browser used to reach the gateway.
     */
    host: string,
    path: string,
    method: string,
    /**
     * Language tags from `Accept-Language`, most preferred first.
     */
    acceptedLanguages: Array<string>,
  }
  /**
   * This sign-in.
   */
  export interface Transaction {
    /**
     * True on the person's first completed sign-in at this tenant.
     */
    firstLogin: boolean,
    /**
     * Completed sign-ins before this one.
     */
    loginCount: bigint,
    /**
     * Where the browser goes after sign-in (a path on the gateway).
     */
    returnUrl: string,
    /**
     * Random id of this sign-in, also in the gateway's logs.
     */
    correlationId: string,
    /**
     * True when this sign-in is the fresh login a rule asked for with
     * `require-reauth`.
     */
    reauthenticated: boolean,
    /**
     * Set when the chain resumes after a `redirect` command: the query
     * or form fields the browser brought back to the continue endpoint
     * (`state` removed). Only the rule that redirected sees them.
     */
    resumed?: Array<[string, string]>,
  }
  /**
   * A secret the tenant granted to this rule.
   */
  export interface Secret {
    name: string,
    value: string,
  }
  /**
   * Everything a rule gets.
   */
  export interface Event {
    tenantId: string,
    /**
     * The rule's name in the tenant's chain.
     */
    ruleName: string,
    /**
     * The rule's configuration from the tenant document (JSON, `{}` if none).
     */
    config: Json,
    user: User,
    connection: Connection,
    request: RequestInfo,
    transaction: Transaction,
    secrets: Array<Secret>,
  }
  /**
   * # Variants
   * 
   * ## `"debug"`
   * 
   * ## `"info"`
   * 
   * ## `"warn"`
   * 
   * ## `"error"`
   */
  export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
  export interface Claim {
    /**
     * Namespaced claim name: must contain `/` or `:` (for example
     * `https://example.com/roles`). Registered JWT/OIDC claims and
     * names the gateway owns are refused.
     */
    name: string,
    value: Json,
  }
  export interface Header {
    /**
     * Must be one of the header names the tenant's configuration lets
     * this rule set; the gateway strips those names from every client
     * request. HTTP-reserved and identity headers are refused.
     */
    name: string,
    /**
     * Visible ASCII and spaces only.
     */
    value: string,
  }
  export interface Redirect {
    /**
     * Absolute URL whose origin is in the rule's allow list, or a path
     * on the gateway. The gateway appends `state=<signed token>`; the
     * page sends the browser to `/.edgeauth/continue?state=...&<fields>`
     * within the token's lifetime to resume the chain at this rule.
     */
    url: string,
  }
  export interface Reauth {
    /**
     * Ask the provider to show its login form again (`prompt=login`).
     */
    promptLogin: boolean,
    /**
     * Maximum age of the provider's authentication in seconds (`max_age`).
     */
    maxAge?: number,
  }
  export interface LogEntry {
    level: LogLevel,
    message: string,
  }
  /**
   * What a rule asks the gateway to do. Applied in order after the rule
   * returned; the first `deny`, `redirect` or `require-reauth` ends the
   * chain.
   */
  export type Command = CommandDeny | CommandSetClaim | CommandSetHeader | CommandPatchAppMetadata | CommandPatchUserMetadata | CommandRedirect | CommandRequireReauth | CommandLog;
  /**
   * Refuse the sign-in; the person sees the reason.
   */
  export interface CommandDeny {
    tag: 'deny',
    val: string,
  }
  /**
   * Add a claim to the signed assertion the origin receives.
   */
  export interface CommandSetClaim {
    tag: 'set-claim',
    val: Claim,
  }
  /**
   * Add a header to every request forwarded to the origin.
   */
  export interface CommandSetHeader {
    tag: 'set-header',
    val: Header,
  }
  /**
   * JSON merge patch (RFC 7386) applied to the app metadata.
   */
  export interface CommandPatchAppMetadata {
    tag: 'patch-app-metadata',
    val: Json,
  }
  /**
   * JSON merge patch (RFC 7386) applied to the user metadata.
   */
  export interface CommandPatchUserMetadata {
    tag: 'patch-user-metadata',
    val: Json,
  }
  /**
   * Send the browser elsewhere first (progressive profiling, consent).
   */
  export interface CommandRedirect {
    tag: 'redirect',
    val: Redirect,
  }
  /**
   * Restart the sign-in at the provider with stronger requirements.
   */
  export interface CommandRequireReauth {
    tag: 'require-reauth',
    val: Reauth,
  }
  /**
   * Write a line to the gateway's log, tagged with tenant and rule.
   */
  export interface CommandLog {
    tag: 'log',
    val: LogEntry,
  }
}
