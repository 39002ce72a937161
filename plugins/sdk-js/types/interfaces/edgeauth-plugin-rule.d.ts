// Generated from wit/plugin.wit by plugins/sdk-js/gen-types.mjs: do not edit.
/// <reference path="./edgeauth-plugin-types.d.ts" />
declare module 'edgeauth:plugin/rule@0.1.0' {
  /**
   * Decide on one sign-in. `err` fails the sign-in (closed, unless the
   * rule is fail-open) and is logged, not shown to the person.
   */
  export function onLogin(event: Event): Array<Command>;
  export type Event = import('edgeauth:plugin/types@0.1.0').Event;
  export type Command = import('edgeauth:plugin/types@0.1.0').Command;
}
