//! Linking with proof (`account_linking = "verified_email_with_proof"`):
//! when a sign-in's verified email is one a profile from another connection
//! already has, the identity first gets a profile of its own
//! ([`crate::profiles::Resolution::NeedsProof`]). The person is then
//! offered to also sign in with a connection of that profile; only if that
//! sign-in lands in that very profile are the two linked.
//!
//! Why this is safe where plain linking by email is not: the proof is a
//! sign-in to the existing profile, in the same browser, started from the
//! offer page, within [`OFFER_TTL_SECS`]. The offer itself is sealed in a
//! cookie ([`Jar::Link`]) set on the browser that completed the first
//! sign-in: an attacker cannot put one in a victim's browser (the login
//! state binds each callback to the browser that started it), and a
//! victim's proof login can only link an identity that this same browser
//! signed in with. Each offer links at most once (a single-use marker
//! keyed by its nonce, `kv_schema::link_used`).
//!
//! The decisions are here; the component carries them out (KV writes in
//! the order of `crate::profiles`' consistency rules).

use http::HeaderMap;
use http::StatusCode;
use http::header::LOCATION;
use serde::{Deserialize, Serialize};

use crate::Response;
use crate::Rng;
use crate::connections::Connection;
use crate::cookies::{self, Jar};
use crate::encoding::random_token;
use crate::identity::Identity;
use crate::login::LoginState;
use crate::pages;
use crate::profiles::{Plan, Profile, Resolution};
use crate::routes;
use crate::seal::Purpose;
use crate::settings::Settings;

/// How long the person has to prove the existing profile.
pub const OFFER_TTL_SECS: u64 = 600;

/// The sealed offer: which new profile and identity may join which profile,
/// once the person proves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    #[serde(rename = "t")]
    pub tenant: String,
    /// The profile the new identity got.
    #[serde(rename = "f")]
    pub from: String,
    /// The profile with the same verified email: the one to prove.
    #[serde(rename = "p")]
    pub target: String,
    /// The new identity.
    #[serde(rename = "c")]
    pub connection: String,
    #[serde(rename = "s")]
    pub subject: String,
    /// The address both share, to show.
    #[serde(rename = "e")]
    pub email: String,
    /// Connections of the target profile the person may prove it with.
    #[serde(rename = "w")]
    pub prove_with: Vec<String>,
    /// Where the person was going (already validated at login).
    #[serde(rename = "r")]
    pub return_to: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "x")]
    pub expires_at: u64,
}

/// The offer for a sign-in whose identity (carrying its new profile id) needs
/// proof, if the tenant still has a connection to prove it with.
pub fn offer(
    settings: &Settings,
    identity: &Identity,
    plan: &Plan,
    return_to: &str,
    now: u64,
    rng: Rng<'_>,
) -> Option<Offer> {
    let Resolution::NeedsProof(target) = &plan.resolution else {
        return None;
    };
    let mut prove_with: Vec<String> = plan
        .prove_with
        .iter()
        .filter(|c| *c != identity.connection_id() && settings.connection(c).is_some())
        .cloned()
        .collect();
    prove_with.dedup();
    if prove_with.is_empty() {
        return None;
    }
    Some(Offer {
        tenant: settings.tenant.clone(),
        from: identity.profile_id.clone()?,
        target: target.clone(),
        connection: identity.connection_id().to_owned(),
        subject: identity.idp_sub().to_owned(),
        email: identity.email.clone().unwrap_or_default(),
        prove_with,
        return_to: return_to.to_owned(),
        nonce: random_token(rng, 18),
        expires_at: now + OFFER_TTL_SECS,
    })
}

fn offer_cookie(settings: &Settings, offer: &Offer, rng: Rng<'_>) -> String {
    let json = serde_json::to_vec(offer).unwrap_or_default();
    let sealed = settings.session_keys.seal(Purpose::LinkOffer, &json, rng);
    cookies::set(settings, Jar::Link, sealed, OFFER_TTL_SECS)
}

/// The live offer the request carries for this tenant, if any.
pub fn read(settings: &Settings, headers: &HeaderMap, now: u64) -> Option<Offer> {
    let name = cookies::name(settings, Jar::Link);
    cookies::values(headers, &name)?.iter().find_map(|v| {
        let plain = settings.session_keys.open(Purpose::LinkOffer, v).ok()?;
        serde_json::from_slice::<Offer>(&plain)
            .ok()
            .filter(|o| o.tenant == settings.tenant && o.expires_at > now)
    })
}

/// A completed sign-in (a redirect that sets a session) goes to the offer
/// page first, with the offer. Anything else (a rule's pause or denial)
/// is left as it is: the offer is for a person who is signed in.
pub fn redirect_to_offer(
    settings: &Settings,
    mut response: Response,
    offer: &Offer,
    rng: Rng<'_>,
) -> Response {
    let session = format!("{}=", cookies::name(settings, Jar::Session));
    let signed_in = response.status() == StatusCode::FOUND
        && response
            .headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .any(|c| {
                c.to_str().is_ok_and(|c| {
                    c.starts_with(&session) && !c.starts_with(&format!("{session};"))
                })
            });
    if !signed_in {
        return response;
    }
    let Ok(location) = http::HeaderValue::from_str(routes::LINK) else {
        return response;
    };
    response.headers_mut().insert(LOCATION, location);
    pages::add_cookie(&mut response, &offer_cookie(settings, offer, rng));
    response
}

/// The offer the callback's sign-in proves: the sign-in was started from
/// the offer page, the browser still holds the offer, and the person
/// signed in to the very profile it names, through one of its connections.
pub fn proven(
    settings: &Settings,
    login: &LoginState,
    identity: &Identity,
    headers: &HeaderMap,
    now: u64,
) -> Option<Offer> {
    if !login.link_proof {
        return None;
    }
    let offer = read(settings, headers, now)?;
    let connection = identity.connection_id();
    (identity.profile_id.as_deref() == Some(offer.target.as_str())
        && connection != offer.connection
        && offer.prove_with.iter().any(|c| c == connection))
    .then_some(offer)
}

/// Whether the two stored profiles are still what the offer was made for:
/// the new profile still holds the new identity, and the proven profile
/// still has the shared address verified. Checked again at link time, as
/// either may have changed (admin unlink, erasure) in the meantime.
pub fn still_linkable(offer: &Offer, target: &Profile, from: &Profile) -> bool {
    target.id == offer.target
        && from.id == offer.from
        && from.has_identity(&offer.connection, &offer.subject)
        && crate::profiles::email_key(&offer.email).is_some_and(|e| target.has_verified_email(&e))
}

/// The offer is spent (linked, declined or proven wrong): its cookie goes.
pub fn forget(settings: &Settings, response: &mut Response) {
    pages::add_cookie(response, &cookies::clear(settings, Jar::Link));
}

/// `GET /.edgeauth/link`: the offer page, or with `?skip=1` on to where the
/// person was going without linking. Without a live offer, the start page.
pub fn page(settings: &Settings, headers: &HeaderMap, skip: bool, now: u64) -> Response {
    let Some(offer) = read(settings, headers, now) else {
        let mut r = pages::redirect("/");
        forget(settings, &mut r);
        return r;
    };
    if skip {
        let mut r = pages::redirect(&offer.return_to);
        forget(settings, &mut r);
        return r;
    }
    let with: Vec<&Connection> = offer
        .prove_with
        .iter()
        .filter_map(|c| settings.connection(c))
        .collect();
    let this = settings
        .connection(&offer.connection)
        .map(|c| c.name.as_str())
        .unwrap_or(offer.connection.as_str());
    pages::html(
        StatusCode::OK,
        crate::chooser_page::link_html(&crate::chooser_page::LinkView {
            tenant_name: settings.display_name(),
            email: &offer.email,
            signed_in_with: this,
            prove_with: &with,
            return_to: &offer.return_to,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::{self, Found, Linking, SignInFacts};
    use crate::testutil::{counter_rng, settings_with};

    const CONNECTIONS: &str = r#"[
        {"id": "corp", "name": "Corp SSO", "kind": "oidc", "issuer": "https://corp.example", "client_id": "gw", "client_secret": "s", "trust_email": true},
        {"id": "social", "name": "Social", "kind": "oidc", "issuer": "https://social.example", "client_id": "gw", "client_secret": "s", "trust_email": true}]"#;

    fn person(connection: &str, sub: &str) -> Identity {
        Identity {
            sub: format!("{connection}|{sub}"),
            idp_subject: Some(sub.into()),
            connection: connection.into(),
            email: Some("pat@example.com".into()),
            email_verified: true,
            ..Default::default()
        }
    }

    /// Pat has a corp profile; pat then signs in through social.
    fn needs_proof(s: &Settings) -> (Identity, Plan) {
        let mut rng = counter_rng();
        let corp = profiles::sign_in(
            &s.tenant,
            (Linking::VerifiedEmailWithProof, true),
            &person("corp", "p1"),
            Found::default(),
            &SignInFacts::default(),
            1000,
            &mut rng,
        )
        .profile;
        let social = person("social", "p9");
        let plan = profiles::sign_in(
            &s.tenant,
            (Linking::VerifiedEmailWithProof, true),
            &social,
            Found {
                by_identity: None,
                by_email: Some(corp),
            },
            &SignInFacts::default(),
            1100,
            &mut rng,
        );
        let mut identity = social;
        identity.profile_id = Some(plan.profile.id.clone());
        (identity, plan)
    }

    fn settings() -> Settings {
        settings_with(&[
            ("connections", CONNECTIONS),
            ("account_linking", "verified_email_with_proof"),
        ])
    }

    fn login(link_proof: bool) -> LoginState {
        let mut l = LoginState::new("corp", "/app".into(), 1100, &mut counter_rng());
        l.link_proof = link_proof;
        l
    }

    fn cookie_of(r: &Response) -> HeaderMap {
        let set = r
            .headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("edgeauth_link="))
            .expect("the offer cookie");
        crate::testutil::cookie_header(set.split(';').next().unwrap())
    }

    fn signed_in(s: &Settings) -> Response {
        let mut r = pages::redirect("/app");
        pages::add_cookie(&mut r, &cookies::set(s, Jar::Session, "sealed".into(), 60));
        r
    }

    #[test]
    fn a_new_identity_with_a_known_verified_email_is_offered_the_proof() {
        let s = settings();
        let (identity, plan) = needs_proof(&s);
        let Resolution::NeedsProof(target) = &plan.resolution else {
            panic!("needs proof: {:?}", plan.resolution);
        };
        assert_ne!(&plan.profile.id, target, "its own profile until proven");
        let offer = offer(&s, &identity, &plan, "/app", 1100, &mut counter_rng()).unwrap();
        assert_eq!(offer.prove_with, ["corp"]);
        assert_eq!(
            (offer.from.as_str(), offer.target.as_str()),
            (plan.profile.id.as_str(), target.as_str())
        );

        let r = redirect_to_offer(&s, signed_in(&s), &offer, &mut counter_rng());
        assert_eq!(r.headers()[LOCATION], routes::LINK);
        assert_eq!(read(&s, &cookie_of(&r), 1200), Some(offer.clone()));
        assert_eq!(read(&s, &cookie_of(&r), offer.expires_at), None, "expired");
        // A rule's pause (no session) is not redirected.
        let paused = redirect_to_offer(&s, pages::redirect("/form"), &offer, &mut counter_rng());
        assert_eq!(paused.headers()[LOCATION], "/form");
    }

    #[test]
    fn only_a_sign_in_from_the_offer_into_the_named_profile_proves_it() {
        let s = settings();
        let (identity, plan) = needs_proof(&s);
        let offer = offer(&s, &identity, &plan, "/app", 1100, &mut counter_rng()).unwrap();
        let headers = cookie_of(&redirect_to_offer(
            &s,
            signed_in(&s),
            &offer,
            &mut counter_rng(),
        ));
        let mut proof = person("corp", "p1");
        proof.profile_id = Some(offer.target.clone());
        assert_eq!(
            proven(&s, &login(true), &proof, &headers, 1200),
            Some(offer.clone())
        );
        // Not started from the offer page.
        assert_eq!(proven(&s, &login(false), &proof, &headers, 1200), None);
        // Another profile, or the new identity itself again.
        let mut other = proof.clone();
        other.profile_id = Some(offer.from.clone());
        assert_eq!(proven(&s, &login(true), &other, &headers, 1200), None);
        let mut again = person("social", "p9");
        again.profile_id = Some(offer.target.clone());
        assert_eq!(proven(&s, &login(true), &again, &headers, 1200), None);
        // No offer in this browser, or another tenant's.
        assert_eq!(
            proven(&s, &login(true), &proof, &HeaderMap::new(), 1200),
            None
        );
        let mut other_tenant = settings();
        other_tenant.tenant = "globex".into();
        assert_eq!(
            proven(&other_tenant, &login(true), &proof, &headers, 1200),
            None
        );
    }

    #[test]
    fn the_page_offers_the_proof_or_goes_on_without_it() {
        let s = settings();
        let (identity, plan) = needs_proof(&s);
        let offer = offer(&s, &identity, &plan, "/app?x=1", 1100, &mut counter_rng()).unwrap();
        let headers = cookie_of(&redirect_to_offer(
            &s,
            signed_in(&s),
            &offer,
            &mut counter_rng(),
        ));
        let r = page(&s, &headers, false, 1200);
        assert_eq!(r.status(), 200);
        let html = String::from_utf8(r.body().clone()).unwrap();
        assert!(html.contains("pat@example.com"), "{html}");
        assert!(html.contains("Continue with Corp SSO"), "{html}");
        assert!(html.contains("name=\"link\" value=\"1\""), "{html}");
        assert!(
            !html.contains("Continue with Social"),
            "not the connection just used"
        );
        let skip = page(&s, &headers, true, 1200);
        assert_eq!(skip.headers()[LOCATION], "/app?x=1");
        assert!(
            skip.headers()[http::header::SET_COOKIE]
                .to_str()
                .unwrap()
                .starts_with("edgeauth_link=;")
        );
        assert_eq!(
            page(&s, &HeaderMap::new(), false, 1200).headers()[LOCATION],
            "/"
        );
    }
}
