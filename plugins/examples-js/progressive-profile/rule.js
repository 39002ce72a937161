// @ts-check
// Example rule (c), in JavaScript: progressive profiling. From the n-th
// sign-in on, if the person's user metadata lacks a field (e.g. `company`),
// the browser is sent to a small form; the form sends the answer to the
// gateway's continue endpoint, and the rule stores it in user metadata.
// The Rust version is plugins/examples/progressive-profile; both pass
// plugins/examples/progressive-profile/conformance.json.
//
// Config: {"field": "company", "form_url": "/profile-form", "from_login": 2,
// "max_length": 100}. `from_login` counts this sign-in: 2 = ask on the
// second sign-in, never on the first.

import { defineRule, patchUserMetadata, redirect } from '../../sdk-js/index.js';

/** @param {any} config */
function settings(config) {
  const { field, form_url: formUrl, from_login: fromLogin = 2, max_length: maxLength = 100 } = config;
  if (typeof field !== 'string' || typeof formUrl !== 'string') {
    throw new Error('invalid rule configuration: `field` and `form_url` are required strings');
  }
  if (!Number.isInteger(fromLogin) || fromLogin < 0 || !Number.isInteger(maxLength) || maxLength < 0) {
    throw new Error('invalid rule configuration: `from_login` and `max_length` must be whole numbers');
  }
  return { field, formUrl, fromLogin, maxLength };
}

/** @param {{field: string, formUrl: string}} c @param {boolean} retry */
function formUrl(c, retry) {
  const sep = c.formUrl.includes('?') ? '&' : '?';
  return `${c.formUrl}${sep}field=${c.field}${retry ? '&retry=1' : ''}`;
}

export const rule = defineRule((login) => {
  const c = settings(login.config);
  if (login.transaction.resumed !== undefined) {
    // Back from the form.
    const answer = (login.resumed(c.field) ?? '').trim();
    if (answer === '' || [...answer].length > c.maxLength || /[\u0000-\u001f\u007f-\u009f]/.test(answer) /* Unicode Cc, as Rust's char::is_control */) {
      // Ask again rather than storing garbage.
      return [redirect(formUrl(c, true))];
    }
    return [patchUserMetadata({ [c.field]: answer })];
  }
  const thisLogin = login.transaction.loginCount + 1;
  const known = login.user.userMetadata[c.field];
  if (thisLogin >= c.fromLogin && !(typeof known === 'string' && known !== '')) {
    return [redirect(formUrl(c, false))];
  }
  return [];
});
