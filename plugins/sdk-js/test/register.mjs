// `node --import ./plugins/sdk-js/test/register.mjs`: resolves the rule's
// host import to host-mock.mjs, so the SDK's index.js loads under Node.
import { register } from 'node:module';

register('data:text/javascript,' + encodeURIComponent(`
export async function resolve(specifier, context, next) {
  if (specifier === 'edgeauth:plugin/host@0.1.0') {
    return { url: ${JSON.stringify(new URL('./host-mock.mjs', import.meta.url).href)}, shortCircuit: true };
  }
  return next(specifier, context);
}`));
