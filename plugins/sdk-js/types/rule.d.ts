// Generated from wit/plugin.wit by plugins/sdk-js/gen-types.mjs: do not edit.
/// <reference path="./interfaces/edgeauth-plugin-host.d.ts" />
/// <reference path="./interfaces/edgeauth-plugin-rule.d.ts" />
/// <reference path="./interfaces/edgeauth-plugin-types.d.ts" />
declare module 'edgeauth:plugin/post-login@0.1.0' {
  export type * as EdgeauthPluginHost010 from 'edgeauth:plugin/host@0.1.0'; // import edgeauth:plugin/host@0.1.0
  export type * as EdgeauthPluginTypes010 from 'edgeauth:plugin/types@0.1.0'; // import edgeauth:plugin/types@0.1.0
  export * as rule from 'edgeauth:plugin/rule@0.1.0'; // export edgeauth:plugin/rule@0.1.0
}
