// Drive the dev IdP's own login pages over plain HTTP, like a person with a browser.

import { request } from './http.mjs';

const attr = (html, re) => {
  const m = html.match(re);
  return m ? m[1].replace(/&amp;/g, '&') : null;
};

/**
 * Start at an authorization URL (or any IdP URL) and walk the IdP until it
 * redirects somewhere that is not the IdP. Does not follow that last redirect.
 *
 * options: username/password (login form), abort (click "Cancel sign-in"),
 * logout (confirm the RP-initiated logout page).
 * Returns { location, res, hops, loginError?, page? }:
 *   location    absolute URL of the first redirect leaving the IdP (null if none)
 *   loginError  the #error text when the IdP re-showed the login form
 */
export async function walkIdp(jar, startUrl, { username, password, abort = false, consent = true, logout = false } = {}) {
  const idpOrigin = new URL(startUrl).origin;
  const hops = [];
  let res = await request(startUrl, { jar });
  hops.push(`${res.status} GET ${startUrl}`);
  let submittedLogin = false;
  for (let i = 0; i < 25; i++) {
    if (res.status >= 300 && res.status < 400) {
      if (new URL(res.location).origin !== idpOrigin) return { location: res.location, res, hops };
      res = await request(res.location, { jar });
      hops.push(`${res.status} GET ${res.url}`);
      continue;
    }
    if (res.status !== 200) return { location: null, res, hops, page: res.body };
    const html = res.body;
    if (/id="login"/.test(html)) {
      const err = attr(html, /id="error"[^>]*>([^<]*)</);
      if (submittedLogin && err) return { location: null, res, hops, loginError: err };
      if (abort) {
        const href = attr(html, /id="abort" href="([^"]+)"/);
        res = await request(new URL(href, res.url).href, { jar });
        hops.push(`${res.status} GET abort`);
        continue;
      }
      if (username === undefined) return { location: null, res, hops, page: html };
      const action = new URL(attr(html, /<form id="login" method="post" action="([^"]+)"/), res.url).href;
      res = await request(action, {
        jar, method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ username, password: password ?? '' }).toString(),
      });
      submittedLogin = true;
      hops.push(`${res.status} POST ${action}`);
      continue;
    }
    if (/id="consent"/.test(html) && consent) {
      const action = new URL(attr(html, /<form id="consent" method="post" action="([^"]+)"/), res.url).href;
      res = await request(action, { jar, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
      hops.push(`${res.status} POST ${action}`);
      continue;
    }
    if (/id="op\.logoutForm"/.test(html) && logout) {
      const action = new URL(attr(html, /<form id="op\.logoutForm" method="post" action="([^"]+)"/), res.url).href;
      const xsrf = attr(html, /name="xsrf" value="([^"]+)"/);
      res = await request(action, {
        jar, method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ xsrf, logout: 'yes' }).toString(),
      });
      hops.push(`${res.status} POST ${action}`);
      continue;
    }
    return { location: null, res, hops, page: html };
  }
  throw new Error(`IdP walk did not finish:\n${hops.join('\n')}`);
}
