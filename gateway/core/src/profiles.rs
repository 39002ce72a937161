//! One profile per person and tenant, across the connections they sign in
//! with (the "360 view"), and the account-linking decision.
//!
//! Storage (Spin KV, keys in [`crate::kv_schema`]), per tenant:
//! - `profile:<tenant>:<profile id>` → the [`Profile`] (the truth);
//! - `profile-identity:<tenant>:<hash of connection|subject>` → profile id;
//! - `profile-email:<tenant>:<hash of the verified email>` → profile id.
//!
//! Consistency rules (no transactions across keys in Spin KV, and several
//! gateway instances may share the store): the profile is written first,
//! its indexes after; an index entry is only a pointer and is trusted only
//! if the profile it names lists that identity or verified email
//! ([`Profile::has_identity`], [`Profile::has_verified_email`]). A crash
//! between the writes leaves at worst a missing index (the next sign-in
//! writes it) or a stale one (ignored, then overwritten).
//!
//! For export (`crate::profile_admin`), each tenant also keeps an
//! append-only list of the profiles it created:
//! `profile-seq:<tenant>` (a counter, `increment`) numbers the entries
//! `profile-list:<tenant>:<n>` → profile id. A new profile's entry is
//! written before the profile ([`Plan::creates`]): a crash in between
//! leaves an entry naming no profile, which the export skips (as it skips
//! erased profiles), never a profile the export misses. Erasure deletes the
//! profile and the index entries that name it; unlinking rewrites the
//! profile first, then drops the indexes of what it no longer lists.
//! Admin patches and sign-ins both read, change and write the whole
//! profile (Spin KV has no compare-and-swap): two at the same instant may
//! lose one's change.
//!
//! Linking is the account-takeover path, so it is narrow on purpose
//! ([`resolve`]): only by an email the provider says is verified, only from
//! a connection the tenant trusts to vouch for emails, only within the
//! tenant (keys are per tenant), and the email must match exactly: the
//! domain as DNS resolves it (lower case, IDNA), the local part byte for
//! byte, so case variants, plus-addressing and Unicode look-alikes of a
//! victim's address are other addresses, never a link.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::identity::Identity;

/// Bounds, so a profile always fits one KV value.
pub const MAX_IDENTITIES: usize = 16;
pub const MAX_EMAILS: usize = 16;
/// Each of `user_metadata` and `app_metadata`, serialized: what rules and
/// admin patches may leave in a profile.
pub const MAX_METADATA: usize = 16 * 1024;
pub const MAX_CLAIMS_BYTES: usize = 8 * 1024;
pub const MAX_USER_AGENT_CHARS: usize = 256;
/// Name, picture URL, IP, connection ids and subjects of a profile from
/// outside (an import): a sign-in's are bounded by the provider's tokens.
pub const MAX_TEXT_CHARS: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Linking {
    /// Every connection's identity is its own profile.
    #[default]
    Off,
    /// A new identity whose verified email a profile already has joins it.
    VerifiedEmail,
    /// Same, but only after the person also signs in with a connection the
    /// profile already has (proof they own it).
    VerifiedEmailWithProof,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIdentity {
    pub connection: String,
    /// The subject as the provider sent it.
    pub subject: String,
    /// What the provider said at the last sign-in (bounded).
    #[serde(default)]
    pub claims: Map<String, Value>,
    pub linked_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Email {
    pub address: String,
    pub verified: bool,
    /// The connection that reported it.
    pub connection: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginMark {
    pub at: u64,
    pub connection: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub id: String,
    pub created_at: u64,
    pub identities: Vec<LinkedIdentity>,
    #[serde(default)]
    pub emails: Vec<Email>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
    #[serde(default)]
    pub user_metadata: Map<String, Value>,
    #[serde(default)]
    pub app_metadata: Map<String, Value>,
    pub logins: u64,
    pub first_login: LoginMark,
    pub last_login: LoginMark,
    #[serde(default)]
    pub last_ip: Option<String>,
    #[serde(default)]
    pub last_user_agent: Option<String>,
}

/// Where a sign-in's identity belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// The identity is already in this profile.
    Known(String),
    /// Link it to this profile (same verified email, linking on).
    Link(String),
    /// This profile has the same verified email, but linking needs proof:
    /// until the person signs in with one of its connections, the identity
    /// gets its own profile.
    NeedsProof(String),
    /// A new profile.
    New,
}

/// The form in which verified emails are indexed and compared: the domain
/// as DNS resolves it (lower case, IDNA; [`crate::identity::normalize_email`]
/// already did that), the local part exactly as sent. `None` for anything
/// that is not a plain address.
pub fn email_key(email: &str) -> Option<String> {
    let normalized = crate::identity::normalize_email(email)?;
    // normalize_email keeps the local part as written and lower-cases the
    // domain; a second pass must not change it (idempotent form).
    (crate::identity::normalize_email(&normalized).as_deref() == Some(&normalized))
        .then_some(normalized)
}

/// Decides where `identity` belongs. `by_identity` is the profile the
/// identity index names (already checked to list the identity), `by_email`
/// the profile the email index names for the identity's email (already
/// checked to list that email as verified). `vouches` says whether the
/// tenant trusts this connection's verified emails for linking.
pub fn resolve(
    linking: Linking,
    vouches: bool,
    identity: &Identity,
    by_identity: Option<&Profile>,
    by_email: Option<&Profile>,
) -> Resolution {
    if let Some(p) = by_identity {
        return Resolution::Known(p.id.clone());
    }
    if linking == Linking::Off || !vouches || !identity.email_verified {
        return Resolution::New;
    }
    let (Some(email), Some(profile)) = (identity.email.as_deref().and_then(email_key), by_email)
    else {
        return Resolution::New;
    };
    if !profile.has_verified_email(&email)
        // A second account at the same provider with the same address is
        // not the same person's other way in: never merged silently.
        || profile
            .identities
            .iter()
            .any(|i| i.connection == identity.connection_id())
        || profile.identities.len() >= MAX_IDENTITIES
    {
        return Resolution::New;
    }
    match linking {
        Linking::VerifiedEmailWithProof => Resolution::NeedsProof(profile.id.clone()),
        _ => Resolution::Link(profile.id.clone()),
    }
}

fn bounded_claims(claims: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let mut size = 0;
    for (k, v) in claims {
        // Protocol values, not facts about the person.
        if matches!(
            k.as_str(),
            "nonce" | "at_hash" | "c_hash" | "aud" | "azp" | "exp" | "iat" | "nbf" | "jti" | "sid"
        ) {
            continue;
        }
        let len = k.len() + v.to_string().len();
        if size + len > MAX_CLAIMS_BYTES {
            break;
        }
        size += len;
        out.insert(k.clone(), v.clone());
    }
    out
}

/// What a sign-in tells the profile besides the identity.
#[derive(Debug, Clone, Default)]
pub struct SignInFacts<'a> {
    pub claims: Option<&'a Map<String, Value>>,
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

impl Profile {
    /// A first sign-in's profile. `id` is random (see [`new_id`]).
    pub fn new(id: String, identity: &Identity, facts: &SignInFacts<'_>, now: u64) -> Profile {
        let mark = LoginMark {
            at: now,
            connection: identity.connection_id().to_owned(),
        };
        let mut p = Profile {
            id,
            created_at: now,
            identities: Vec::new(),
            emails: Vec::new(),
            name: None,
            picture: None,
            user_metadata: Map::new(),
            app_metadata: Map::new(),
            logins: 0,
            first_login: mark.clone(),
            last_login: mark,
            last_ip: None,
            last_user_agent: None,
        };
        p.record_sign_in(identity, facts, now);
        p
    }

    pub fn has_identity(&self, connection: &str, subject: &str) -> bool {
        self.identities
            .iter()
            .any(|i| i.connection == connection && i.subject == subject)
    }

    pub fn has_verified_email(&self, key: &str) -> bool {
        self.emails.iter().any(|e| e.verified && e.address == key)
    }

    /// The verified emails, in the indexed form.
    pub fn verified_emails(&self) -> impl Iterator<Item = &str> {
        self.emails
            .iter()
            .filter(|e| e.verified)
            .map(|e| e.address.as_str())
    }

    /// Updates the profile with a sign-in through `identity` (linking it if
    /// it is new to the profile). An email's verified flag comes only from
    /// the connection that reported it: another connection saying
    /// "unverified" does not take a verification away, and saying "verified"
    /// about an address first seen unverified elsewhere adds its own entry.
    pub fn record_sign_in(&mut self, identity: &Identity, facts: &SignInFacts<'_>, now: u64) {
        let connection = identity.connection_id().to_owned();
        let subject = identity.idp_sub().to_owned();
        let claims = facts.claims.map(bounded_claims).unwrap_or_default();
        let known = self
            .identities
            .iter()
            .position(|i| i.connection == connection && i.subject == subject);
        match known {
            Some(n) => self.identities[n].claims = claims,
            None if self.identities.len() < MAX_IDENTITIES => {
                self.identities.push(LinkedIdentity {
                    connection: connection.clone(),
                    subject,
                    claims,
                    linked_at: now,
                })
            }
            None => {}
        }
        if let Some(address) = identity.email.as_deref().and_then(email_key) {
            let known = self
                .emails
                .iter()
                .position(|e| e.address == address && e.connection == connection);
            match known {
                Some(n) => self.emails[n].verified = identity.email_verified,
                None if self.emails.len() < MAX_EMAILS => self.emails.push(Email {
                    address,
                    verified: identity.email_verified,
                    connection: connection.clone(),
                }),
                None => {}
            }
        }
        if self.name.is_none() {
            self.name = identity.name.clone();
        }
        if identity.picture.is_some() {
            self.picture = identity.picture.clone();
        }
        self.logins += 1;
        self.last_login = LoginMark {
            at: now,
            connection,
        };
        if let Some(ip) = facts.ip {
            self.last_ip = Some(ip.to_owned());
        }
        if let Some(ua) = facts.user_agent {
            self.last_user_agent = Some(ua.chars().take(MAX_USER_AGENT_CHARS).collect());
        }
    }
}

impl Profile {
    /// Whether the profile is one the gateway could have written: its id's
    /// form, at least one and at most [`MAX_IDENTITIES`] identities (each
    /// once), at most [`MAX_EMAILS`] emails in the indexed form
    /// ([`email_key`]), each once per connection, and every bound above.
    /// For profiles from outside (imports); the reason names what is wrong.
    pub fn check(&self) -> Result<(), String> {
        let text = |what: &str, s: &str| {
            if s.chars().count() > MAX_TEXT_CHARS {
                Err(format!(
                    "`{what}` is longer than {MAX_TEXT_CHARS} characters"
                ))
            } else {
                Ok(())
            }
        };
        if !valid_id(&self.id) {
            return Err("`id`: profile ids are `p_` and 26 of a-z 2-7".into());
        }
        if self.identities.is_empty() || self.identities.len() > MAX_IDENTITIES {
            return Err(format!("`identities`: 1 to {MAX_IDENTITIES}"));
        }
        for (n, i) in self.identities.iter().enumerate() {
            if i.connection.is_empty() || i.subject.is_empty() {
                return Err(format!(
                    "`identities[{n}]`: connection and subject must not be empty"
                ));
            }
            text(&format!("identities[{n}].subject"), &i.subject)?;
            text(&format!("identities[{n}].connection"), &i.connection)?;
            let size: usize = i
                .claims
                .iter()
                .map(|(k, v)| k.len() + v.to_string().len())
                .sum();
            if size > MAX_CLAIMS_BYTES {
                return Err(format!(
                    "`identities[{n}].claims`: at most {MAX_CLAIMS_BYTES} bytes"
                ));
            }
            if self.identities[..n]
                .iter()
                .any(|o| o.connection == i.connection && o.subject == i.subject)
            {
                return Err(format!("`identities[{n}]`: listed twice"));
            }
        }
        if self.emails.len() > MAX_EMAILS {
            return Err(format!("`emails`: at most {MAX_EMAILS}"));
        }
        for (n, e) in self.emails.iter().enumerate() {
            if email_key(&e.address).as_deref() != Some(e.address.as_str()) {
                return Err(format!(
                    "`emails[{n}].address`: not a plain address in the indexed form (domain lower case, no blanks)"
                ));
            }
            if e.connection.is_empty() {
                return Err(format!("`emails[{n}].connection` must not be empty"));
            }
            text(&format!("emails[{n}].connection"), &e.connection)?;
            if self.emails[..n]
                .iter()
                .any(|o| o.address == e.address && o.connection == e.connection)
            {
                return Err(format!("`emails[{n}]`: listed twice for its connection"));
            }
        }
        for (field, map) in [
            ("user_metadata", &self.user_metadata),
            ("app_metadata", &self.app_metadata),
        ] {
            let size = Value::Object(map.clone()).to_string().len();
            if size > MAX_METADATA {
                return Err(format!("`{field}`: {size} bytes; at most {MAX_METADATA}"));
            }
        }
        for (field, value) in [
            ("name", &self.name),
            ("picture", &self.picture),
            ("last_ip", &self.last_ip),
        ] {
            if let Some(v) = value {
                text(field, v)?;
            }
        }
        if self
            .last_user_agent
            .as_ref()
            .is_some_and(|ua| ua.chars().count() > MAX_USER_AGENT_CHARS)
        {
            return Err(format!(
                "`last_user_agent`: at most {MAX_USER_AGENT_CHARS} characters"
            ));
        }
        text("first_login.connection", &self.first_login.connection)?;
        text("last_login.connection", &self.last_login.connection)
    }
}

impl Profile {
    /// What rules see of the person before this sign-in: the logins before
    /// it (the profile already counts this one) and whether it is the first.
    pub fn logins_before(&self) -> u64 {
        self.logins.saturating_sub(1)
    }

    /// Replaces the metadata with what the tenant's rules left (whole
    /// objects: the chain started from this profile's and patched them).
    /// Anything but an object, or over [`MAX_METADATA`], keeps the stored
    /// value: the rules runtime refuses such patches before they get here.
    pub fn set_rule_metadata(&mut self, app: &Value, user: &Value) {
        fn fits(v: &Value) -> Option<&Map<String, Value>> {
            v.as_object()
                .filter(|_| v.to_string().len() <= MAX_METADATA)
        }
        if let Some(app) = fits(app) {
            self.app_metadata = app.clone();
        }
        if let Some(user) = fits(user) {
            self.user_metadata = user.clone();
        }
    }

    /// Metadata a rule kept for this person before profiles existed (the
    /// rules' per-subject record, `kv_schema::rule_user`): a new profile
    /// starts from it so an upgrade does not make rules forget people.
    pub fn adopt_rule_record(&mut self, stored: &[u8], now: u64) {
        let Ok(json) = crate::kv_schema::open(stored, now).or_else(|e| match e {
            // Records from before the KV envelope were plain JSON.
            crate::kv_schema::Unusable::Malformed => Ok(stored),
            other => Err(other),
        }) else {
            return;
        };
        #[derive(Deserialize)]
        struct Record {
            #[serde(default)]
            app: Value,
            #[serde(default)]
            user: Value,
        }
        if let Ok(r) = serde_json::from_slice::<Record>(json) {
            self.set_rule_metadata(&r.app, &r.user);
        }
    }
}

/// The claims a sign-in gives a profile's identity: an OpenID provider's ID
/// token payload (already verified by the callback), or for OAuth2
/// connections what the gateway mapped from the provider's profile.
pub fn sign_in_claims(identity: &Identity, id_token: &str) -> Map<String, Value> {
    let from_token = crate::encoding::jwt_payload(id_token);
    if !from_token.is_empty() {
        return from_token;
    }
    let mut m = Map::new();
    m.insert("sub".into(), Value::from(identity.idp_sub()));
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), Value::from(v.as_str()));
        }
    };
    put("email", &identity.email);
    put("name", &identity.name);
    put("picture", &identity.picture);
    if identity.email.is_some() {
        m.insert(
            "email_verified".into(),
            Value::from(identity.email_verified),
        );
    }
    if !identity.groups.is_empty() {
        m.insert("groups".into(), Value::from(identity.groups.clone()));
    }
    m
}

/// A new profile id: `p_` and 26 base32 characters of 128 random bits.
pub fn new_id(rng: crate::Rng<'_>) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut bytes = [0u8; 16];
    rng(&mut bytes);
    let mut bits: u32 = 0;
    let mut have = 0;
    let mut out = String::from("p_");
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        have += 8;
        while have >= 5 {
            have -= 5;
            out.push(ALPHABET[((bits >> have) & 31) as usize] as char);
        }
    }
    if have > 0 {
        out.push(ALPHABET[((bits << (5 - have)) & 31) as usize] as char);
    }
    out
}

/// Whether `s` has the form [`new_id`] produces (ids from requests).
pub fn valid_id(s: &str) -> bool {
    s.strip_prefix("p_").is_some_and(|r| {
        r.len() == 26
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    })
}

/// What a sign-in found in the store: the profile the identity index names,
/// and (for an identity with a verified email) the one the email index names.
#[derive(Debug, Default)]
pub struct Found {
    pub by_identity: Option<Profile>,
    pub by_email: Option<Profile>,
}

/// A stored profile, if `bytes` is one; `None` for junk.
pub fn decode(bytes: Option<&[u8]>) -> Option<Profile> {
    serde_json::from_slice(bytes?).ok()
}

/// Writes a sign-in (or an import) makes, in order: the list entry of a
/// new profile, the profile, then its indexes (see the consistency rules
/// above); [`Plan::steps`] is that order.
#[derive(Debug)]
pub struct Plan {
    pub profile: Profile,
    pub resolution: Resolution,
    pub writes: Vec<(String, Vec<u8>)>,
    /// For [`Resolution::NeedsProof`]: the connections the profile with the
    /// same verified email signs in with (what the person may prove it with;
    /// `crate::linking`).
    pub prove_with: Vec<String>,
}

/// One store operation of a [`Plan`], in [`Plan::steps`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step<'a> {
    /// Take the next number `n` of the tenant's profile list
    /// (`kv_schema::profile_seq`, by `increment`) and write this profile id
    /// under `kv_schema::profile_list(tenant, n)`.
    ListEntry(&'a str),
    Put(&'a str, &'a [u8]),
}

impl Plan {
    /// Whether the sign-in creates a profile: the caller then adds its id
    /// to the tenant's profile list (`kv_schema::profile_list`) before the
    /// writes, so an export never misses a profile that exists.
    pub fn creates(&self) -> bool {
        matches!(self.resolution, Resolution::New | Resolution::NeedsProof(_))
    }

    /// A new profile starts from the metadata rules kept for the person
    /// before profiles existed ([`Profile::adopt_rule_record`]).
    pub fn adopt_rule_record(&mut self, stored: &[u8], now: u64) {
        if !self.creates() {
            return;
        }
        self.profile.adopt_rule_record(stored, now);
        // The profile is always the first write (see `sign_in`).
        if let Some((_, value)) = self.writes.first_mut() {
            *value = serde_json::to_vec(&self.profile).unwrap_or_default();
        }
    }

    /// Every store operation, in the order the consistency rules need: a
    /// new profile's list entry first (an export never misses a profile
    /// that exists), then [`Plan::writes`] (the profile, then its indexes).
    pub fn steps(&self) -> impl Iterator<Item = Step<'_>> {
        self.creates()
            .then_some(Step::ListEntry(self.profile.id.as_str()))
            .into_iter()
            .chain(
                self.writes
                    .iter()
                    .map(|(k, v)| Step::Put(k.as_str(), v.as_slice())),
            )
    }
}

/// `profile` written, then the index entries of `identities` and `emails`
/// (verified, in indexed form) pointing at it: the one write order of
/// sign-ins and imports.
fn profile_writes<'a>(
    tenant: &str,
    profile: &Profile,
    identities: impl IntoIterator<Item = (&'a str, &'a str)>,
    emails: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, Vec<u8>)> {
    let id = profile.id.as_bytes();
    let mut writes = vec![(
        crate::kv_schema::profile(tenant, &profile.id),
        serde_json::to_vec(profile).unwrap_or_default(),
    )];
    writes.extend(identities.into_iter().map(|(connection, subject)| {
        (
            crate::kv_schema::profile_identity(tenant, connection, subject),
            id.to_vec(),
        )
    }));
    writes.extend(
        emails
            .into_iter()
            .map(|e| (crate::kv_schema::profile_email(tenant, e), id.to_vec())),
    );
    writes
}

/// The writes that store an imported `profile` as a sign-in stores a new
/// one: list entry, profile, then an index entry for every identity and
/// verified email it lists. The caller has checked that none of those
/// indexes names another live profile (`crate::profile_admin`).
pub fn import(tenant: &str, profile: Profile) -> Plan {
    let writes = profile_writes(
        tenant,
        &profile,
        profile
            .identities
            .iter()
            .map(|i| (i.connection.as_str(), i.subject.as_str())),
        profile.verified_emails(),
    );
    Plan {
        profile,
        resolution: Resolution::New,
        writes,
        prove_with: Vec::new(),
    }
}

/// The profile this sign-in lands in, and what to write.
pub fn sign_in(
    tenant: &str,
    (linking, vouches): (Linking, bool),
    identity: &Identity,
    found: Found,
    facts: &SignInFacts<'_>,
    now: u64,
    rng: crate::Rng<'_>,
) -> Plan {
    let connection = identity.connection_id();
    let subject = identity.idp_sub();
    let by_identity = found
        .by_identity
        .filter(|p| p.has_identity(connection, subject));
    let email = identity.email.as_deref().and_then(email_key);
    let by_email = found
        .by_email
        .filter(|p| email.as_deref().is_some_and(|e| p.has_verified_email(e)));
    let resolution = resolve(
        linking,
        vouches,
        identity,
        by_identity.as_ref(),
        by_email.as_ref(),
    );
    let prove_with = match (&resolution, &by_email) {
        (Resolution::NeedsProof(_), Some(p)) => {
            p.identities.iter().map(|i| i.connection.clone()).collect()
        }
        _ => Vec::new(),
    };
    let existing = match &resolution {
        Resolution::Known(_) => by_identity,
        Resolution::Link(_) => by_email.clone(),
        Resolution::NeedsProof(_) | Resolution::New => None,
    };
    let mut profile = match existing {
        Some(mut p) => {
            p.record_sign_in(identity, facts, now);
            p
        }
        None => Profile::new(new_id(rng), identity, facts, now),
    };
    // A profile that grew past its bounds stays readable: never write more.
    profile.identities.truncate(MAX_IDENTITIES);
    // The verified email's index names the first profile that has it
    // verified; it moves only when that one no longer does (stale).
    let email = email.filter(|e| {
        profile.has_verified_email(e) && by_email.as_ref().is_none_or(|p| p.id == profile.id)
    });
    let writes = profile_writes(tenant, &profile, [(connection, subject)], email.as_deref());
    Plan {
        profile,
        resolution,
        writes,
        prove_with,
    }
}

/// Why two profiles cannot be merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeError {
    /// A profile merged into itself.
    SameProfile,
    /// The union would have `count` identities, more than [`MAX_IDENTITIES`].
    TooManyIdentities { count: usize },
    /// The union would have `count` emails, more than [`MAX_EMAILS`].
    TooManyEmails { count: usize },
    /// `field` (`user_metadata` or `app_metadata`) would be `size` bytes,
    /// more than [`MAX_METADATA`].
    MetadataTooLarge { field: &'static str, size: usize },
}

impl std::fmt::Display for MergeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MergeError::SameProfile => f.write_str("a profile cannot be merged into itself"),
            MergeError::TooManyIdentities { count } => write!(
                f,
                "the merged profile would have {count} identities; at most {MAX_IDENTITIES} (unlink some first)"
            ),
            MergeError::TooManyEmails { count } => write!(
                f,
                "the merged profile would have {count} emails; at most {MAX_EMAILS}"
            ),
            MergeError::MetadataTooLarge { field, size } => write!(
                f,
                "the merged `{field}` would be {size} bytes; at most {MAX_METADATA}"
            ),
        }
    }
}

/// One store operation of a merge, in [`Merged::writes`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeWrite {
    /// Write `value` under `key`.
    Put(String, Vec<u8>),
    /// Point the verified-email index `key` (of `email`) at the merged
    /// profile, unless it names a third profile that has `email` verified:
    /// that one was first and keeps it, as at sign-in
    /// ([`email_index_free`] decides, from the profile the index names).
    EmailIndex {
        key: String,
        email: String,
    },
    Delete(String),
}

/// A merge: the profile that results (the target's id) and what to write.
#[derive(Debug)]
pub struct Merged {
    pub profile: Profile,
    /// The id of the profile merged in, deleted last.
    pub source: String,
    pub writes: Vec<MergeWrite>,
}

impl Merged {
    /// Whether `id` is one of the two merged profiles (an index naming
    /// either is the merge's to repoint).
    pub fn involves(&self, id: &str) -> bool {
        id == self.profile.id || id == self.source
    }
}

/// Whether an email index whose current value names `owner` (already read;
/// `None`: it names nothing, junk, or one of the merged profiles) may be
/// pointed at the merged profile: only if that owner does not list the
/// address as verified (a stale pointer).
pub fn email_index_free(owner: Option<&Profile>, email: &str) -> bool {
    owner.is_none_or(|p| !p.has_verified_email(email))
}

/// The top-level keys of `from` that `into` lacks are added; `into`'s own
/// values win.
fn merge_keys(
    into: &mut Map<String, Value>,
    from: Map<String, Value>,
    field: &'static str,
) -> Result<(), MergeError> {
    for (k, v) in from {
        into.entry(k).or_insert(v);
    }
    let size = Value::Object(into.clone()).to_string().len();
    if size > MAX_METADATA {
        return Err(MergeError::MetadataTooLarge { field, size });
    }
    Ok(())
}

/// Merges `source` into `target` (both of `tenant`): one profile with the
/// target's id, creation time and metadata values, the source's metadata
/// keys the target lacks, both profiles' identities and emails (refused past
/// [`MAX_IDENTITIES`] / [`MAX_EMAILS`]), their logins added up, the earlier
/// first login and the later last login (with that sign-in's IP and user
/// agent). Used by the admin API's merge and meant for linking with proof
/// (source: the profile a sign-in just created; target: the one proven).
///
/// The writes, in order, keep the consistency rules at the top of this
/// module (an index entry is trusted only if the profile it names lists
/// what was looked up), whatever prefix of them a crash leaves done:
/// 1. the merged profile under the target's id: it now lists the source's
///    identities and emails too, while the source, still stored, lists them
///    as well, so every index (still naming the source) stays trusted and a
///    sign-in lands where it did before;
/// 2. each of the source's identity indexes, then each of its verified
///    emails' indexes (see [`MergeWrite::EmailIndex`]), pointed at the
///    target: each is trusted from the moment it is written, since the
///    target lists that identity or email;
/// 3. the source profile deleted, last (a failed write stops the merge
///    before it), when every index that named it names the target; an
///    entry nothing repointed (a stale one) then names no profile and is
///    ignored, like an erased profile's. Its export list entry stays and is
///    skipped, as an erased profile's.
///
/// After a crash before step 3 both profiles exist and repeating the merge
/// finishes it (identities and emails are a union, so nothing doubles but
/// the login count). Two merges or a merge and a sign-in of the same person
/// at the same instant can lose one's change (no compare-and-swap in Spin
/// KV), as for patches.
pub fn merge(tenant: &str, target: Profile, source: Profile) -> Result<Merged, MergeError> {
    if target.id == source.id {
        return Err(MergeError::SameProfile);
    }
    let mut p = target;
    let source_id = source.id.clone();
    let identity_keys: Vec<String> = source
        .identities
        .iter()
        .map(|i| crate::kv_schema::profile_identity(tenant, &i.connection, &i.subject))
        .collect();
    let source_emails: Vec<String> = source.verified_emails().map(str::to_owned).collect();
    for i in source.identities {
        if !p.has_identity(&i.connection, &i.subject) {
            p.identities.push(i);
        }
    }
    if p.identities.len() > MAX_IDENTITIES {
        return Err(MergeError::TooManyIdentities {
            count: p.identities.len(),
        });
    }
    for e in source.emails {
        match p
            .emails
            .iter_mut()
            .find(|m| m.address == e.address && m.connection == e.connection)
        {
            // The same connection vouched for it in either profile.
            Some(m) => m.verified |= e.verified,
            None => p.emails.push(e),
        }
    }
    if p.emails.len() > MAX_EMAILS {
        return Err(MergeError::TooManyEmails {
            count: p.emails.len(),
        });
    }
    merge_keys(&mut p.user_metadata, source.user_metadata, "user_metadata")?;
    merge_keys(&mut p.app_metadata, source.app_metadata, "app_metadata")?;
    if p.name.is_none() {
        p.name = source.name;
    }
    if p.picture.is_none() {
        p.picture = source.picture;
    }
    p.logins = p.logins.saturating_add(source.logins);
    if source.first_login.at < p.first_login.at {
        p.first_login = source.first_login;
    }
    if source.last_login.at > p.last_login.at {
        p.last_login = source.last_login;
        p.last_ip = source.last_ip.or(p.last_ip);
        p.last_user_agent = source.last_user_agent.or(p.last_user_agent);
    }
    let id = p.id.as_bytes().to_vec();
    let mut writes = vec![MergeWrite::Put(
        crate::kv_schema::profile(tenant, &p.id),
        serde_json::to_vec(&p).unwrap_or_default(),
    )];
    writes.extend(
        identity_keys
            .into_iter()
            .map(|k| MergeWrite::Put(k, id.clone())),
    );
    writes.extend(
        source_emails
            .into_iter()
            .map(|email| MergeWrite::EmailIndex {
                key: crate::kv_schema::profile_email(tenant, &email),
                email,
            }),
    );
    writes.push(MergeWrite::Delete(crate::kv_schema::profile(
        tenant, &source_id,
    )));
    Ok(Merged {
        profile: p,
        source: source_id,
        writes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv_schema;
    use crate::testutil::counter_rng;

    fn id(connection: &str, sub: &str, email: Option<&str>, verified: bool) -> Identity {
        Identity {
            sub: format!("{connection}|{sub}"),
            idp_subject: Some(sub.into()),
            connection: connection.into(),
            email: email.map(str::to_owned),
            email_verified: verified,
            ..Default::default()
        }
    }

    fn victim() -> Profile {
        Profile::new(
            new_id(&mut counter_rng()),
            &id("corp", "v1", Some("victim@example.com"), true),
            &SignInFacts::default(),
            1000,
        )
    }

    #[test]
    fn ids_are_random_and_checkable() {
        let mut rng = counter_rng();
        let (a, b) = (new_id(&mut rng), new_id(&mut rng));
        assert_ne!(a, b);
        assert!(valid_id(&a) && valid_id(&b), "{a} {b}");
        for bad in [
            "",
            "p_",
            "p_ABC",
            "x_aaaaaaaaaaaaaaaaaaaaaaaaaa",
            "p_aaaaaaaaaaaaaaaaaaaaaaaaa1",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn links_only_a_vouched_verified_exact_email() {
        let v = victim();
        let same = id("github", "42", Some("victim@example.com"), true);
        let r = |linking, vouches, who: &Identity| resolve(linking, vouches, who, None, Some(&v));
        assert_eq!(
            r(Linking::VerifiedEmail, true, &same),
            Resolution::Link(v.id.clone())
        );
        assert_eq!(
            r(Linking::VerifiedEmailWithProof, true, &same),
            Resolution::NeedsProof(v.id.clone())
        );
        assert_eq!(r(Linking::Off, true, &same), Resolution::New, "linking off");
        assert_eq!(
            r(Linking::VerifiedEmail, false, &same),
            Resolution::New,
            "connection does not vouch"
        );
        // The attacks: an unverified copy, case and Unicode variants, plus-addressing.
        for (email, verified) in [
            ("victim@example.com", false),
            ("Victim@example.com", true),
            ("VICTIM@EXAMPLE.COM", true),
            ("victim+x@example.com", true),
            ("vi\u{441}tim@example.com", true),
            ("victim@ex\u{430}mple.com", true),
        ] {
            let attacker = id("social", "evil", Some(email), verified);
            let got = r(Linking::VerifiedEmail, true, &attacker);
            // The index is keyed by email_key: a variant finds no profile
            // there, and even if handed the victim's it is not linked.
            let key = email_key(email);
            assert!(
                key.as_deref() != Some("victim@example.com") || !verified,
                "{email:?} indexes as the victim's address"
            );
            if key.as_deref() != Some("victim@example.com") {
                assert_eq!(got, Resolution::New, "{email:?}");
            }
        }
        // The domain's letter case and root dot are DNS's business: those
        // are the same address (only its owner can have it verified).
        for same in [
            "victim@EXAMPLE.com",
            "victim@example.com.",
            " victim@example.com",
        ] {
            assert_eq!(
                email_key(same).as_deref(),
                Some("victim@example.com"),
                "{same}"
            );
        }
    }

    #[test]
    fn a_known_identity_stays_and_same_connection_accounts_never_merge() {
        let v = victim();
        let again = id("corp", "v1", Some("victim@example.com"), true);
        assert_eq!(
            resolve(Linking::VerifiedEmail, true, &again, Some(&v), Some(&v)),
            Resolution::Known(v.id.clone())
        );
        let second_account = id("corp", "v2", Some("victim@example.com"), true);
        assert_eq!(
            resolve(
                Linking::VerifiedEmail,
                true,
                &second_account,
                None,
                Some(&v)
            ),
            Resolution::New
        );
    }

    #[test]
    fn sign_in_plans_write_the_profile_first_and_keep_the_first_email_owner() {
        let mut rng = counter_rng();
        let corp = id("corp", "v1", Some("victim@example.com"), true);
        let first = sign_in(
            "acme",
            (Linking::VerifiedEmail, true),
            &corp,
            Found::default(),
            &SignInFacts::default(),
            1000,
            &mut rng,
        );
        assert_eq!(first.resolution, Resolution::New);
        let keys: Vec<&str> = first.writes.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys[0].starts_with("profile:acme:p_"), "{keys:?}");
        assert!(keys[1].starts_with("profile-identity:acme:"));
        assert!(keys[2].starts_with("profile-email:acme:"));
        // GitHub with the same verified address: linked, same id, two identities.
        let gh = id("github", "42", Some("victim@example.com"), true);
        let found = Found {
            by_identity: None,
            by_email: Some(first.profile.clone()),
        };
        let linked = sign_in(
            "acme",
            (Linking::VerifiedEmail, true),
            &gh,
            found,
            &SignInFacts::default(),
            2000,
            &mut rng,
        );
        assert_eq!(
            linked.resolution,
            Resolution::Link(first.profile.id.clone())
        );
        assert_eq!(linked.profile.id, first.profile.id);
        assert_eq!(linked.profile.identities.len(), 2);
        // Linking off: a separate profile, and the email index stays with the first.
        let found = Found {
            by_identity: None,
            by_email: Some(first.profile.clone()),
        };
        let apart = sign_in(
            "acme",
            (Linking::Off, true),
            &gh,
            found,
            &SignInFacts::default(),
            2000,
            &mut rng,
        );
        assert_ne!(apart.profile.id, first.profile.id);
        assert!(
            !apart
                .writes
                .iter()
                .any(|(k, _)| k.starts_with("profile-email:"))
        );
        // An index naming a profile that does not list the identity is not trusted.
        let found = Found {
            by_identity: Some(first.profile.clone()),
            by_email: None,
        };
        let stranger = sign_in(
            "acme",
            (Linking::Off, true),
            &id("social", "x", None, false),
            found,
            &SignInFacts::default(),
            3000,
            &mut rng,
        );
        assert_ne!(stranger.profile.id, first.profile.id);
    }

    #[test]
    fn sign_ins_update_the_profile_without_losing_verification() {
        let mut p = victim();
        let facts = SignInFacts {
            ip: Some("203.0.113.9"),
            user_agent: Some("Firefox"),
            ..Default::default()
        };
        p.record_sign_in(
            &id("github", "42", Some("victim@example.com"), false),
            &facts,
            2000,
        );
        assert_eq!(p.identities.len(), 2);
        assert_eq!(p.logins, 2);
        assert_eq!(p.last_login.connection, "github");
        assert_eq!(p.first_login.connection, "corp");
        assert!(
            p.has_verified_email("victim@example.com"),
            "corp's verification stays"
        );
        assert_eq!(p.last_ip.as_deref(), Some("203.0.113.9"));
        // The same identity again: no duplicate.
        p.record_sign_in(&id("github", "42", None, false), &facts, 3000);
        assert_eq!(p.identities.len(), 2);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<Profile>(&json).unwrap(), p);
    }
    fn profile_with(id_: &str, identities: &[(&str, &str, &str)], at: u64) -> Profile {
        let mut p: Option<Profile> = None;
        for (n, (c, sub, email)) in identities.iter().enumerate() {
            let who = id(c, sub, Some(email), true);
            let t = at + n as u64;
            match &mut p {
                None => p = Some(Profile::new(id_.into(), &who, &SignInFacts::default(), t)),
                Some(p) => p.record_sign_in(&who, &SignInFacts::default(), t),
            }
        }
        p.unwrap()
    }

    const T: &str = "p_tttttttttttttttttttttttttt";
    const S: &str = "p_ssssssssssssssssssssssssss";

    #[test]
    fn a_merge_keeps_the_target_and_adds_what_the_source_has() {
        let mut target = profile_with(T, &[("corp", "v1", "v@corp.example")], 2000);
        target.user_metadata.insert("lang".into(), "fr".into());
        target.app_metadata.insert("plan".into(), "pro".into());
        target.last_ip = Some("192.0.2.1".into());
        let mut source = profile_with(
            S,
            &[
                ("github", "42", "v@gh.example"),
                ("social", "7", "v@corp.example"),
            ],
            1000,
        );
        source.user_metadata.insert("lang".into(), "de".into());
        source.user_metadata.insert("theme".into(), "dark".into());
        source.last_login.at = 5000;
        source.last_ip = Some("198.51.100.2".into());
        source.name = Some("Source".into());
        let m = merge("acme", target.clone(), source.clone()).unwrap();
        let p = &m.profile;
        assert_eq!(
            (p.id.as_str(), p.created_at),
            (T, 2000),
            "the target's id and creation"
        );
        assert_eq!(p.user_metadata["lang"], "fr", "the target's values win");
        assert_eq!(
            p.user_metadata["theme"], "dark",
            "the source's other keys join"
        );
        assert_eq!(p.app_metadata["plan"], "pro");
        let ids: Vec<_> = p
            .identities
            .iter()
            .map(|i| (i.connection.as_str(), i.subject.as_str()))
            .collect();
        assert_eq!(ids, [("corp", "v1"), ("github", "42"), ("social", "7")]);
        assert!(p.has_verified_email("v@gh.example") && p.has_verified_email("v@corp.example"));
        assert_eq!(
            p.emails.len(),
            3,
            "(address, connection) pairs: corp's and social's v@corp both stay"
        );
        assert_eq!(p.logins, target.logins + source.logins);
        assert_eq!(p.first_login.at, 1000, "the earlier first login");
        assert_eq!(
            (p.last_login.at, p.last_ip.as_deref()),
            (5000, Some("198.51.100.2")),
            "the later last login, with its IP"
        );
        assert_eq!(p.name.as_deref(), Some("Source"), "the target had none");
        // The writes: the target first, the source's indexes repointed, the source deleted last.
        let w = &m.writes;
        assert_eq!(
            w[0],
            MergeWrite::Put(
                kv_schema::profile("acme", T),
                serde_json::to_vec(p).unwrap()
            )
        );
        assert_eq!(
            w[1],
            MergeWrite::Put(
                kv_schema::profile_identity("acme", "github", "42"),
                T.as_bytes().to_vec()
            )
        );
        assert_eq!(
            w[2],
            MergeWrite::Put(
                kv_schema::profile_identity("acme", "social", "7"),
                T.as_bytes().to_vec()
            )
        );
        let emails: Vec<_> = w[3..5]
            .iter()
            .map(|x| match x {
                MergeWrite::EmailIndex { key, email } => {
                    assert_eq!(key, &kv_schema::profile_email("acme", email));
                    email.as_str()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(emails, ["v@gh.example", "v@corp.example"]);
        assert_eq!(w[5], MergeWrite::Delete(kv_schema::profile("acme", S)));
        assert_eq!(w.len(), 6);
        assert!(m.involves(T) && m.involves(S) && !m.involves("p_x"));
    }

    #[test]
    fn an_email_index_stays_with_a_third_profile_that_has_it_verified() {
        let other = profile_with(
            "p_oooooooooooooooooooooooooo",
            &[("corp", "o", "v@corp.example")],
            1,
        );
        assert!(
            !email_index_free(Some(&other), "v@corp.example"),
            "its first owner keeps it"
        );
        assert!(
            email_index_free(Some(&other), "w@corp.example"),
            "a stale pointer is taken over"
        );
        assert!(email_index_free(None, "v@corp.example"));
    }

    #[test]
    fn merges_past_the_bounds_or_into_itself_are_refused() {
        let target = profile_with(T, &[("corp", "v1", "v@corp.example")], 1);
        assert_eq!(
            merge("acme", target.clone(), target.clone()).unwrap_err(),
            MergeError::SameProfile
        );
        let many: Vec<(String, String)> = (0..MAX_IDENTITIES)
            .map(|n| (format!("c{n}"), format!("s{n}")))
            .collect();
        let refs: Vec<(&str, &str, &str)> = many
            .iter()
            .map(|(c, s)| (c.as_str(), s.as_str(), "x@example.com"))
            .collect();
        let full = profile_with(S, &refs, 1);
        assert_eq!(full.identities.len(), MAX_IDENTITIES);
        let e = merge("acme", target.clone(), full.clone()).unwrap_err();
        assert_eq!(
            e,
            MergeError::TooManyIdentities {
                count: MAX_IDENTITIES + 1
            }
        );
        assert!(e.to_string().contains("at most 16"), "{e}");
        // Identities both have count once: a full source with the target's own identity fits.
        let mut shared = full.clone();
        shared.identities[0] = target.identities[0].clone();
        shared.emails.clear();
        assert!(merge("acme", target.clone(), shared).is_ok());
        let mut emails = profile_with(S, &[("gh", "1", "a@example.com")], 1);
        emails.emails = (0..MAX_EMAILS)
            .map(|n| Email {
                address: format!("e{n}@example.com"),
                verified: true,
                connection: "gh".into(),
            })
            .collect();
        assert_eq!(
            merge("acme", target.clone(), emails).unwrap_err(),
            MergeError::TooManyEmails {
                count: MAX_EMAILS + 1
            }
        );
        let mut big = profile_with(S, &[("gh", "1", "a@example.com")], 1);
        big.app_metadata
            .insert("x".into(), "y".repeat(MAX_METADATA).into());
        assert!(matches!(
            merge("acme", target, big).unwrap_err(),
            MergeError::MetadataTooLarge {
                field: "app_metadata",
                ..
            }
        ));
    }
    #[test]
    fn imports_and_sign_ins_share_one_write_order() {
        let p = profile_with(
            T,
            &[
                ("corp", "v1", "v@corp.example"),
                ("gh", "9", "v@gh.example"),
            ],
            1,
        );
        let plan = import("acme", p.clone());
        let steps: Vec<Step<'_>> = plan.steps().collect();
        let json = serde_json::to_vec(&p).unwrap();
        let (k0, k1, k2) = (
            kv_schema::profile("acme", T),
            kv_schema::profile_identity("acme", "corp", "v1"),
            kv_schema::profile_identity("acme", "gh", "9"),
        );
        let (e1, e2) = (
            kv_schema::profile_email("acme", "v@corp.example"),
            kv_schema::profile_email("acme", "v@gh.example"),
        );
        assert_eq!(
            steps,
            [
                Step::ListEntry(T),
                Step::Put(&k0, &json),
                Step::Put(&k1, T.as_bytes()),
                Step::Put(&k2, T.as_bytes()),
                Step::Put(&e1, T.as_bytes()),
                Step::Put(&e2, T.as_bytes()),
            ]
        );
        // A first sign-in: the same shape; a later one has no list entry.
        let mut rng = counter_rng();
        let first = sign_in(
            "acme",
            (Linking::Off, true),
            &id("corp", "v1", Some("v@corp.example"), true),
            Found::default(),
            &SignInFacts::default(),
            1,
            &mut rng,
        );
        let kinds = |plan: &Plan| -> Vec<&'static str> {
            plan.steps()
                .map(|s| match s {
                    Step::ListEntry(_) => "list",
                    Step::Put(k, _) if k.starts_with("profile:") => "profile",
                    Step::Put(_, _) => "index",
                })
                .collect()
        };
        assert_eq!(kinds(&first), ["list", "profile", "index", "index"]);
        let again = sign_in(
            "acme",
            (Linking::Off, true),
            &id("corp", "v1", Some("v@corp.example"), true),
            Found {
                by_identity: Some(first.profile.clone()),
                by_email: Some(first.profile.clone()),
            },
            &SignInFacts::default(),
            2,
            &mut rng,
        );
        assert_eq!(kinds(&again), ["profile", "index", "index"]);
    }
}
