// Types of the SDK's conveniences (index.js). The contract's own types come
// from types/, generated from wit/plugin.wit (gen-types.mjs); nothing here
// restates them: commands and event parts are the generated ones.
/// <reference path="./types/rule.d.ts" />

import type { Command, Event, LogLevel, User, LinkedIdentity, Transaction } from 'edgeauth:plugin/types@0.1.0';

export type { Command, Event, LogLevel } from 'edgeauth:plugin/types@0.1.0';

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export function deny(reason: string): Extract<Command, { tag: 'deny' }>;
export function setClaim(name: string, value: JsonValue): Extract<Command, { tag: 'set-claim' }>;
export function setHeader(name: string, value: string): Extract<Command, { tag: 'set-header' }>;
export function patchAppMetadata(patch: { [key: string]: JsonValue }): Extract<Command, { tag: 'patch-app-metadata' }>;
export function patchUserMetadata(patch: { [key: string]: JsonValue }): Extract<Command, { tag: 'patch-user-metadata' }>;
export function redirect(url: string): Extract<Command, { tag: 'redirect' }>;
export function requireReauth(opts?: { promptLogin?: boolean; maxAge?: number }): Extract<Command, { tag: 'require-reauth' }>;
export function logCommand(level: LogLevel, message: string): Extract<Command, { tag: 'log' }>;
export function log(level: LogLevel, message: string): void;

/** The event with its JSON fields parsed (`config`, metadata, profiles). */
export interface Login {
  tenantId: Event['tenantId'];
  ruleName: Event['ruleName'];
  config: any;
  user: Omit<User, 'appMetadata' | 'userMetadata' | 'identities'> & {
    appMetadata: { [key: string]: JsonValue };
    userMetadata: { [key: string]: JsonValue };
    identities: Array<Omit<LinkedIdentity, 'profile'> & { profile: { [key: string]: JsonValue } }>;
  };
  connection: Event['connection'];
  request: Event['request'];
  transaction: Omit<Transaction, 'loginCount'> & { loginCount: number };
  secrets: { [name: string]: string };
  verifiedEmailDomain(): string | undefined;
  resumed(field: string): string | undefined;
}

export function toLogin(event: Event): Login;

/** What the module exports as `rule` (the WIT's `rule` interface). */
export function defineRule(onLogin: (login: Login) => Command[]): typeof import('edgeauth:plugin/rule@0.1.0');
