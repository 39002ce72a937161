// Generated from wit/plugin.wit by plugins/sdk-js/gen-types.mjs: do not edit.
/// <reference path="./edgeauth-plugin-types.d.ts" />
declare module 'edgeauth:plugin/host@0.1.0' {
  /**
   * Logs immediately (unlike the `log` command, also when the rule fails).
   */
  export function log(level: LogLevel, message: string): void;
  /**
   * Wall-clock time, milliseconds since the Unix epoch.
   */
  export function nowMs(): bigint;
  /**
   * Cryptographically secure random bytes (at most 1024 per call).
   */
  export function randomBytes(len: number): Uint8Array;
  /**
   * An outbound HTTP call, checked against the rule's allow list.
   */
  export function httpFetch(request: HttpRequest): HttpResponse;
  export type LogLevel = import('edgeauth:plugin/types@0.1.0').LogLevel;
  export interface HttpRequest {
    /**
     * GET, POST, PUT, PATCH or DELETE.
     */
    method: string,
    /**
     * Absolute http(s) URL; its origin must be in the rule's allow list.
     */
    url: string,
    headers: Array<[string, string]>,
    body?: Uint8Array,
    /**
     * Total time allowed; capped by the tenant's configuration.
     */
    timeoutMs: number,
  }
  export interface HttpResponse {
    status: number,
    headers: Array<[string, string]>,
    /**
     * At most 64 KiB; longer bodies are an error.
     */
    body: Uint8Array,
  }
  export type HttpError = HttpErrorForbiddenHost | HttpErrorInvalidRequest | HttpErrorTimeout | HttpErrorUnreachable | HttpErrorTooLarge | HttpErrorBudgetExhausted;
  /**
   * The URL's origin is not in the rule's allow list.
   */
  export interface HttpErrorForbiddenHost {
    tag: 'forbidden-host',
    val: string,
  }
  export interface HttpErrorInvalidRequest {
    tag: 'invalid-request',
    val: string,
  }
  export interface HttpErrorTimeout {
    tag: 'timeout',
  }
  export interface HttpErrorUnreachable {
    tag: 'unreachable',
    val: string,
  }
  export interface HttpErrorTooLarge {
    tag: 'too-large',
  }
  /**
   * The rule already made as many calls as its budget allows.
   */
  export interface HttpErrorBudgetExhausted {
    tag: 'budget-exhausted',
  }
}
