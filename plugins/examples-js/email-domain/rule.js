// @ts-check
// Example rule (a), in JavaScript: only people with a verified email at one
// of the configured domains may sign in. The Rust version is
// plugins/examples/email-domain; both pass plugins/examples/email-domain/conformance.json.
//
// Config: {"domains": ["example.com"], "message": "optional reason"}.

import { defineRule, deny } from '../../sdk-js/index.js';

export const rule = defineRule((login) => {
  const { domains, message } = login.config;
  if (!Array.isArray(domains) || !domains.every((d) => typeof d === 'string')) {
    throw new Error('invalid rule configuration: `domains` must be a list of domain names');
  }
  const domain = login.verifiedEmailDomain();
  if (domain === undefined) return [deny('a verified email address is required')];
  if (domains.some((d) => d.toLowerCase() === domain)) return [];
  return [deny(typeof message === 'string' ? message : `email addresses at ${domain} may not sign in here`)];
});
