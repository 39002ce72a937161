//! Signed rule artifacts.
//!
//! A precompiled rule is native code for the embedded runtime (Pulley
//! bytecode): loading one is as trusting as running gateway code, so the
//! gateway loads only artifacts the project's tooling produced from a
//! validated component and signed with the operator's Ed25519 key. The
//! gateway holds only public keys (Spin variable `rule_keys`).
//!
//! Layout: `MAGIC`, header length (u32 big-endian), header (JSON), a 64-byte
//! Ed25519 signature over `DOMAIN || header length || header`, then the
//! precompiled component. The header names the rule, the key, the runtime the
//! code was compiled for and the SHA-256 of both the original component and
//! the precompiled bytes, so the signature covers everything.
//!
//! Checking that signature (Ed25519 and the SHA-256 of ~220 KB of code) at
//! every sign-in costs about a millisecond per rule in wasm32. So the
//! gateway checks it once, when the artifact is uploaded, and stores the
//! artifact *bound*: wrapped with its own MAC ([`bind`]), keyed by a key
//! derived from its `session_keys` for this use, the tenant and the rule.
//! A sign-in checks only that MAC ([`open_stored`]), which is several times
//! cheaper, and still refuses any stored byte that changed. The MAC is keyed
//! BLAKE3 (`EDGEAUTH-BOUND2`), ~1.9x as fast as the XChaCha20-Poly1305 tag of
//! the first binding format (`EDGEAUTH-BOUND1`) inside the component, which
//! still opens for what was stored in it. Artifacts stored
//! before binding existed, files, and artifacts bound under a gateway key
//! that has since been retired take the slow path (the full signature check).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8] = b"EDGEAUTH-RULE1\n";
const DOMAIN: &[u8] = b"edgeauth-rule-artifact-v1\0";
const MAX_HEADER: usize = 4096;
/// Largest artifact accepted (upload and load).
/// JavaScript rules carry their engine (SpiderMonkey, ~24 MB of Pulley code
/// plus a ~3 MB heap snapshot): ~28 MB as an artifact.
pub const MAX_ARTIFACT: usize = 48 << 20;

/// What the embedded runtime runs. Artifacts built for anything else are
/// refused with a message saying to rebuild them.
pub const RUNTIME_ID: &str = "wasmtime-48.0.8/pulley32/fuel/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub name: String,
    pub kid: String,
    pub runtime: String,
    pub wasm_sha256: String,
    pub code_sha256: String,
    /// Seconds since the Unix epoch, informational.
    pub created: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn signed_message(header: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 4 + header.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&(header.len() as u32).to_be_bytes());
    m.extend_from_slice(header);
    m
}

fn valid_kid(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The operator's signing key: `kid:<base64url 32-byte seed>`.
pub struct SigningKey {
    pub kid: String,
    pair: KeyPair,
}

impl SigningKey {
    pub fn parse(spec: &str) -> Result<SigningKey, String> {
        let (kid, seed) = spec
            .trim()
            .split_once(':')
            .ok_or("a signing key looks like `kid:<base64url 32-byte seed>`")?;
        if !valid_kid(kid) {
            return Err(format!("key id `{kid}` must be 1-32 of A-Z a-z 0-9 - _"));
        }
        let seed = B64
            .decode(seed.trim())
            .ok()
            .and_then(|b| Seed::from_slice(&b).ok())
            .ok_or("the seed must be 32 bytes, base64url without padding")?;
        Ok(SigningKey {
            kid: kid.to_owned(),
            pair: KeyPair::from_seed(seed),
        })
    }

    pub fn from_seed(kid: &str, seed: [u8; 32]) -> SigningKey {
        SigningKey {
            kid: kid.to_owned(),
            pair: KeyPair::from_seed(Seed::new(seed)),
        }
    }

    /// `kid:<base64url seed>`, for the operator's key file.
    pub fn secret_spec(&self) -> String {
        format!("{}:{}", self.kid, B64.encode(self.pair.sk.seed().as_ref()))
    }

    /// `kid:<base64url public key>`, for the gateway's `rule_keys` variable.
    pub fn public_spec(&self) -> String {
        format!("{}:{}", self.kid, B64.encode(self.pair.pk.as_ref()))
    }

    /// Wraps precompiled `code` for the rule `name`.
    pub fn sign(
        &self,
        name: &str,
        wasm: &[u8],
        code: &[u8],
        runtime: &str,
        created: u64,
    ) -> Vec<u8> {
        let header = Header {
            name: name.to_owned(),
            kid: self.kid.clone(),
            runtime: runtime.to_owned(),
            wasm_sha256: sha256_hex(wasm),
            code_sha256: sha256_hex(code),
            created,
        };
        let header = serde_json::to_vec(&header).expect("header serializes");
        let sig = self.pair.sk.sign(signed_message(&header), None);
        let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + 64 + code.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(header.len() as u32).to_be_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(sig.as_ref());
        out.extend_from_slice(code);
        out
    }
}

/// The public keys the gateway accepts (`kid:<base64url key>,...`).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, PublicKey)>,
}

impl TrustedKeys {
    pub fn parse(spec: &str) -> Result<TrustedKeys, String> {
        let mut keys: Vec<(String, PublicKey)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, key) = entry
                .split_once(':')
                .ok_or("each key looks like `kid:<base64url 32-byte Ed25519 public key>`")?;
            if !valid_kid(kid) {
                return Err(format!("key id `{kid}` must be 1-32 of A-Z a-z 0-9 - _"));
            }
            if keys.iter().any(|(k, _)| k == kid) {
                return Err(format!("key id `{kid}` appears twice"));
            }
            let pk = B64
                .decode(key.trim())
                .ok()
                .and_then(|b| PublicKey::from_slice(&b).ok())
                .ok_or_else(|| {
                    format!("key `{kid}` must be 32 bytes, base64url without padding")
                })?;
            keys.push((kid.to_owned(), pk));
        }
        Ok(TrustedKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn trusts(&self, kid: &str) -> bool {
        self.keys.iter().any(|(k, _)| k == kid)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArtifactError {
    Malformed(&'static str),
    UnknownKey(String),
    BadSignature,
    /// The code does not match the signed digest: tampered.
    Tampered,
    WrongRule {
        expected: String,
        found: String,
    },
    WrongRuntime(String),
    TooLarge,
    /// The gateway's MAC over the stored artifact does not verify: the
    /// stored bytes changed since the upload (or were moved from another
    /// tenant or rule).
    BadBinding,
    /// A stored version's bytes are not the artifact its id names.
    WrongVersion(String),
}

impl std::fmt::Display for ArtifactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArtifactError::Malformed(what) => write!(f, "not a rule artifact ({what})"),
            ArtifactError::UnknownKey(k) => {
                write!(f, "signed with key `{k}`, which the gateway does not trust")
            }
            ArtifactError::BadSignature => write!(f, "its signature does not verify"),
            ArtifactError::Tampered => {
                write!(f, "its code does not match its signed digest (tampered)")
            }
            ArtifactError::WrongRule { expected, found } => {
                write!(f, "it was signed for rule `{found}`, not `{expected}`")
            }
            ArtifactError::WrongRuntime(r) => write!(
                f,
                "it was built for runtime `{r}` but the gateway runs `{RUNTIME_ID}`; rebuild it with `edgeauth rule build`"
            ),
            ArtifactError::TooLarge => write!(f, "it is larger than {MAX_ARTIFACT} bytes"),
            ArtifactError::BadBinding => write!(
                f,
                "the stored artifact does not match the gateway's MAC (altered in storage)"
            ),
            ArtifactError::WrongVersion(v) => write!(
                f,
                "the stored bytes are not version `{v}` (altered in storage)"
            ),
        }
    }
}

/// A checked artifact: its code may be handed to the runtime.
#[derive(Debug)]
pub struct Verified<'a> {
    pub header: Header,
    pub code: &'a [u8],
}

type Parts<'a> = (Header, &'a [u8], &'a [u8], &'a [u8]);

/// Splits an artifact into header, header bytes, signature and code without
/// checking the signature (for tools that print it).
pub fn parse_unverified(bytes: &[u8]) -> Result<Parts<'_>, ArtifactError> {
    if bytes.len() > MAX_ARTIFACT {
        return Err(ArtifactError::TooLarge);
    }
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or(ArtifactError::Malformed("bad magic"))?;
    if rest.len() < 4 {
        return Err(ArtifactError::Malformed("truncated"));
    }
    let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_HEADER || rest.len() < 4 + len + 64 {
        return Err(ArtifactError::Malformed("truncated header"));
    }
    let header_bytes = &rest[4..4 + len];
    let sig = &rest[4 + len..4 + len + 64];
    let code = &rest[4 + len + 64..];
    let header: Header =
        serde_json::from_slice(header_bytes).map_err(|_| ArtifactError::Malformed("bad header"))?;
    Ok((header, header_bytes, sig, code))
}

/// Verifies `bytes` as the artifact of rule `name` under `keys`.
pub fn verify<'a>(
    bytes: &'a [u8],
    name: &str,
    keys: &TrustedKeys,
) -> Result<Verified<'a>, ArtifactError> {
    let (header, header_bytes, sig, code) = parse_unverified(bytes)?;
    let pk = keys
        .keys
        .iter()
        .find(|(k, _)| *k == header.kid)
        .map(|(_, pk)| pk)
        .ok_or_else(|| ArtifactError::UnknownKey(header.kid.clone()))?;
    let sig = Signature::from_slice(sig).map_err(|_| ArtifactError::BadSignature)?;
    pk.verify(signed_message(header_bytes), &sig)
        .map_err(|_| ArtifactError::BadSignature)?;
    if sha256_hex(code) != header.code_sha256 {
        return Err(ArtifactError::Tampered);
    }
    if header.name != name {
        return Err(ArtifactError::WrongRule {
            expected: name.to_owned(),
            found: header.name,
        });
    }
    if header.runtime != RUNTIME_ID {
        return Err(ArtifactError::WrongRuntime(header.runtime));
    }
    Ok(Verified { header, code })
}

// ------------------------------------------------------------ binding

/// Marks a stored artifact bound by the gateway: `BOUND_MAGIC`, key id length
/// (u8), key id, the 32-byte keyed BLAKE3 of the artifact, then the signed
/// artifact as uploaded.
pub const BOUND_MAGIC: &[u8] = b"EDGEAUTH-BOUND2\n";
/// The first binding format, still opened (not written): `BOUND_MAGIC_V1`,
/// key id length, key id, 24-byte nonce, 16-byte XChaCha20-Poly1305 tag (the
/// artifact as associated data), then the artifact.
pub const BOUND_MAGIC_V1: &[u8] = b"EDGEAUTH-BOUND1\n";
/// The label of the keys derived from `session_keys` for binding
/// (`edgeauth_core::seal::KeyRing::derive`).
pub const BIND_LABEL: &str = "rule-artifact-bind/v1";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const BLAKE3_TAG_LEN: usize = 32;
/// Most a binding adds in front of an artifact (magic, key id of at most
/// 255 bytes, the longer of the two MACs).
const BINDING_MAX: usize = 16 + 1 + 255 + NONCE_LEN + BLAKE3_TAG_LEN;

/// Whether `bytes` are a signed artifact, as built or as the gateway stores
/// it (bound, in either format).
pub fn is_artifact(bytes: &[u8]) -> bool {
    [MAGIC, BOUND_MAGIC, BOUND_MAGIC_V1]
        .iter()
        .any(|m| bytes.starts_with(m))
}

/// The gateway's binding keys: derived from its `session_keys`, the first
/// binds, all of them open (rotation).
#[derive(Clone, Default)]
pub struct BindKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl std::fmt::Debug for BindKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "BindKeys{ids:?}")
    }
}

impl BindKeys {
    pub fn from_ring(ring: &edgeauth_core::seal::KeyRing) -> BindKeys {
        BindKeys {
            keys: ring.derive(BIND_LABEL),
        }
    }

    /// Keys as `(kid, key)`, the first binds (tests; `from_ring` otherwise).
    pub fn new(keys: Vec<(String, [u8; 32])>) -> BindKeys {
        BindKeys { keys }
    }

    /// The key for one place an artifact is stored: the purpose key MACed
    /// with the place's parts (length-prefixed, so the encoding is
    /// prefix-free: `[tenant, rule]` of an artifact stored before versions
    /// never equals any `[tenant, rule, version]`), so an artifact bound for
    /// one never opens as another's. The BLAKE3 format's context starts with
    /// 0xff, which no length prefix of the first format's does (no part is
    /// 4 GiB long): the two formats never share a key.
    fn place_key(key: &[u8; 32], place: &Place<'_>, format: Format) -> [u8; 32] {
        let parts = place.parts();
        let mut ctx = Vec::with_capacity(1 + parts.iter().map(|p| 4 + p.len()).sum::<usize>());
        if format == Format::Blake3 {
            ctx.push(0xff);
        }
        for part in parts {
            ctx.extend_from_slice(&(part.len() as u32).to_be_bytes());
            ctx.extend_from_slice(part.as_bytes());
        }
        hmac_sha256::HMAC::mac(&ctx, key)
    }

    /// The keyed BLAKE3 of `artifact` stored at `place`.
    fn tag(key: &[u8; 32], place: &Place<'_>, artifact: &[u8]) -> blake3::Hash {
        blake3::keyed_hash(&BindKeys::place_key(key, place, Format::Blake3), artifact)
    }

    /// The first format's cipher for `place`.
    fn cipher_v1(key: &[u8; 32], place: &Place<'_>) -> XChaCha20Poly1305 {
        use chacha20poly1305::KeyInit as _;
        XChaCha20Poly1305::new(&BindKeys::place_key(key, place, Format::Poly1305).into())
    }
}

/// The two binding formats' MACs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// `EDGEAUTH-BOUND1`: XChaCha20-Poly1305, read only.
    Poly1305,
    /// `EDGEAUTH-BOUND2`: keyed BLAKE3.
    Blake3,
}

/// Where a bound artifact is stored, which its MAC covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place<'a> {
    /// `rule-artifact:<tenant>:<rule>`, the one artifact of a rule from before
    /// versions (and the legacy upload path's key).
    Rule { tenant: &'a str, rule: &'a str },
    /// `rule-version:<tenant>:<rule>:<version>`: one immutable version.
    Version {
        tenant: &'a str,
        rule: &'a str,
        version: &'a str,
    },
}

impl<'a> Place<'a> {
    fn parts(&self) -> Vec<&'a str> {
        match *self {
            Place::Rule { tenant, rule } => vec![tenant, rule],
            Place::Version {
                tenant,
                rule,
                version,
            } => vec![tenant, rule, version],
        }
    }

    fn rule(&self) -> &'a str {
        match *self {
            Place::Rule { rule, .. } | Place::Version { rule, .. } => rule,
        }
    }
}

/// Hex digits of a version id.
pub const VERSION_LEN: usize = 16;

/// The version id of a signed artifact: the first [`VERSION_LEN`] hex
/// digits of the SHA-256 of its bytes as uploaded (content-addressed: the
/// same artifact is the same version, a different one never overwrites it).
pub fn version_id(artifact: &[u8]) -> String {
    let mut id = sha256_hex(artifact);
    id.truncate(VERSION_LEN);
    id
}

/// Whether `text` looks like a version id (so it can be put in a key).
pub fn valid_version(text: &str) -> bool {
    text.len() == VERSION_LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Wraps `artifact` (already verified with [`verify`]) for storage under
/// `tenant`/`rule`. The MAC is keyed BLAKE3 (a PRF, so a MAC) under the
/// place's key: with its wasm SIMD code it hashes ~1.5 GB/s inside the
/// component, where Poly1305 did ~0.8 (bench/results/2026-12-07-rule-loading-2.md),
/// and this hash runs over the whole artifact at every sign-in.
pub fn bind(artifact: &[u8], tenant: &str, rule: &str, keys: &BindKeys) -> Result<Vec<u8>, String> {
    bind_at(artifact, &Place::Rule { tenant, rule }, keys)
}

/// [`bind`] for any [`Place`] (a version: bound to its id too, so a stored
/// version cannot be swapped for another version of the same rule).
pub fn bind_at(artifact: &[u8], place: &Place<'_>, keys: &BindKeys) -> Result<Vec<u8>, String> {
    let (kid, key) = keys
        .keys
        .first()
        .ok_or("no gateway key to bind artifacts with")?;
    let tag = BindKeys::tag(key, place, artifact);
    let kid_len = u8::try_from(kid.len()).map_err(|_| "key id too long")?;
    let mut out =
        Vec::with_capacity(BOUND_MAGIC.len() + 1 + kid.len() + BLAKE3_TAG_LEN + artifact.len());
    out.extend_from_slice(BOUND_MAGIC);
    out.push(kid_len);
    out.extend_from_slice(kid.as_bytes());
    out.extend_from_slice(tag.as_bytes());
    out.extend_from_slice(artifact);
    Ok(out)
}

struct Bound<'a> {
    kid: &'a str,
    format: Format,
    /// The first format's nonce; empty for BLAKE3.
    nonce: &'a [u8],
    tag: &'a [u8],
    artifact: &'a [u8],
}

/// `None` for bytes without a bound magic (an artifact stored as
/// uploaded, or a file).
fn split_bound(stored: &[u8]) -> Option<Result<Bound<'_>, ArtifactError>> {
    let (format, rest, nonce_len, tag_len) = if let Some(rest) = stored.strip_prefix(BOUND_MAGIC) {
        (Format::Blake3, rest, 0, BLAKE3_TAG_LEN)
    } else {
        let rest = stored.strip_prefix(BOUND_MAGIC_V1)?;
        (Format::Poly1305, rest, NONCE_LEN, TAG_LEN)
    };
    let malformed = Err(ArtifactError::Malformed("truncated binding"));
    let Some((&kid_len, rest)) = rest.split_first() else {
        return Some(malformed);
    };
    let kid_len = kid_len as usize;
    if rest.len() < kid_len + nonce_len + tag_len {
        return Some(malformed);
    }
    let Ok(kid) = std::str::from_utf8(&rest[..kid_len]) else {
        return Some(Err(ArtifactError::Malformed("bad binding key id")));
    };
    let rest = &rest[kid_len..];
    Some(Ok(Bound {
        kid,
        format,
        nonce: &rest[..nonce_len],
        tag: &rest[nonce_len..nonce_len + tag_len],
        artifact: &rest[nonce_len + tag_len..],
    }))
}

/// The signed artifact inside stored bytes, unchecked (for listings).
pub fn stored_artifact(stored: &[u8]) -> &[u8] {
    match split_bound(stored) {
        Some(Ok(b)) => b.artifact,
        _ => stored,
    }
}

/// How [`open_stored`] checked an artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The gateway's MAC (bound at upload under a current key).
    Binding,
    /// The full signature check: stored before binding existed, bound
    /// under a gateway key no longer configured, or a file.
    Signature,
}

/// Checks stored bytes (KV value or file) as the artifact of `rule` for
/// `tenant`. Bound under a key the gateway still has: the MAC must verify
/// (else [`ArtifactError::BadBinding`], never a fallback), the signer must
/// still be trusted and the header must name this rule and runtime; the
/// signature itself was checked at upload. Anything else: [`verify`].
pub fn open_stored<'a>(
    stored: &'a [u8],
    tenant: &str,
    rule: &str,
    trusted: &TrustedKeys,
    bind_keys: &BindKeys,
) -> Result<(Verified<'a>, Check), ArtifactError> {
    open_at(stored, &Place::Rule { tenant, rule }, trusted, bind_keys)
}

/// [`open_stored`] for any [`Place`]. A version is also refused when its
/// bytes are not the ones its id names: on the fast path the MAC covers the
/// id; on the slow path (no binding, or a retired gateway key) the
/// artifact's digest is compared with the id.
pub fn open_at<'a>(
    stored: &'a [u8],
    place: &Place<'_>,
    trusted: &TrustedKeys,
    bind_keys: &BindKeys,
) -> Result<(Verified<'a>, Check), ArtifactError> {
    if stored.len() > MAX_ARTIFACT + BINDING_MAX {
        return Err(ArtifactError::TooLarge);
    }
    let rule = place.rule();
    let slow = |artifact: &'a [u8]| -> Result<(Verified<'a>, Check), ArtifactError> {
        if let Place::Version { version, .. } = place
            && version_id(artifact) != *version
        {
            return Err(ArtifactError::WrongVersion(version.to_string()));
        }
        Ok((verify(artifact, rule, trusted)?, Check::Signature))
    };
    let bound = match split_bound(stored) {
        None => return slow(stored),
        Some(b) => b?,
    };
    let Some((_, key)) = bind_keys.keys.iter().find(|(k, _)| k == bound.kid) else {
        // Bound under a retired gateway key: the signature still decides.
        return slow(bound.artifact);
    };
    let intact = match bound.format {
        // `Hash`'s equality is constant-time.
        Format::Blake3 => <[u8; BLAKE3_TAG_LEN]>::try_from(bound.tag)
            .is_ok_and(|tag| BindKeys::tag(key, place, bound.artifact) == blake3::Hash::from(tag)),
        Format::Poly1305 => BindKeys::cipher_v1(key, place)
            .decrypt_in_place_detached(
                XNonce::from_slice(bound.nonce),
                bound.artifact,
                &mut [],
                Tag::from_slice(bound.tag),
            )
            .is_ok(),
    };
    if !intact {
        return Err(ArtifactError::BadBinding);
    }
    let (header, _, _, code) = parse_unverified(bound.artifact)?;
    if !trusted.trusts(&header.kid) {
        return Err(ArtifactError::UnknownKey(header.kid));
    }
    if header.name != rule {
        return Err(ArtifactError::WrongRule {
            expected: rule.to_owned(),
            found: header.name,
        });
    }
    if header.runtime != RUNTIME_ID {
        return Err(ArtifactError::WrongRuntime(header.runtime));
    }
    Ok((Verified { header, code }, Check::Binding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed("op1", [7; 32])
    }

    fn trusted() -> TrustedKeys {
        TrustedKeys::parse(&key().public_spec()).unwrap()
    }

    #[test]
    fn round_trip() {
        let a = key().sign("email-domain", b"wasm", b"code bytes", RUNTIME_ID, 1);
        let v = verify(&a, "email-domain", &trusted()).unwrap();
        assert_eq!(v.code, b"code bytes");
        assert_eq!(v.header.wasm_sha256, sha256_hex(b"wasm"));
        let again = SigningKey::parse(&key().secret_spec()).unwrap();
        assert_eq!(again.public_spec(), key().public_spec());
    }

    #[test]
    fn tampering_and_wrong_keys_fail() {
        let a = key().sign("r", b"wasm", b"code bytes", RUNTIME_ID, 1);
        let mut code = a.clone();
        *code.last_mut().unwrap() ^= 1;
        assert_eq!(
            verify(&code, "r", &trusted()).unwrap_err(),
            ArtifactError::Tampered
        );
        let mut header = a.clone();
        let i = MAGIC.len() + 10;
        header[i] ^= 1;
        assert!(verify(&header, "r", &trusted()).is_err());
        let mut sig = a.clone();
        let hl = u32::from_be_bytes(a[MAGIC.len()..MAGIC.len() + 4].try_into().unwrap()) as usize;
        sig[MAGIC.len() + 4 + hl] ^= 1;
        assert_eq!(
            verify(&sig, "r", &trusted()).unwrap_err(),
            ArtifactError::BadSignature
        );
        let other =
            SigningKey::from_seed("op1", [8; 32]).sign("r", b"w", b"code bytes", RUNTIME_ID, 1);
        assert_eq!(
            verify(&other, "r", &trusted()).unwrap_err(),
            ArtifactError::BadSignature
        );
        let unknown = SigningKey::from_seed("op2", [8; 32]).sign("r", b"w", b"c", RUNTIME_ID, 1);
        assert!(matches!(
            verify(&unknown, "r", &trusted()),
            Err(ArtifactError::UnknownKey(_))
        ));
        assert!(matches!(
            verify(&a, "other", &trusted()),
            Err(ArtifactError::WrongRule { .. })
        ));
        let old = key().sign("r", b"w", b"c", "wasmtime-1/pulley32", 1);
        assert!(matches!(
            verify(&old, "r", &trusted()),
            Err(ArtifactError::WrongRuntime(_))
        ));
        assert!(verify(b"\0asm", "r", &trusted()).is_err());
        assert!(verify(&a[..MAGIC.len() + 6], "r", &trusted()).is_err());
        assert!(verify(&a, "r", &TrustedKeys::default()).is_err());
    }

    fn gw_keys() -> BindKeys {
        BindKeys::new(vec![("g1".into(), [1; 32])])
    }

    /// `artifact` bound in the first format, as gateways before the BLAKE3
    /// one stored it.
    fn bind_v1(artifact: &[u8], place: &Place<'_>, kid: &str, key: &[u8; 32]) -> Vec<u8> {
        let nonce = [3u8; NONCE_LEN];
        let tag = BindKeys::cipher_v1(key, place)
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), artifact, &mut [])
            .unwrap();
        let mut out = BOUND_MAGIC_V1.to_vec();
        out.push(kid.len() as u8);
        out.extend_from_slice(kid.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&tag);
        out.extend_from_slice(artifact);
        out
    }

    #[test]
    fn artifacts_bound_in_the_first_format_still_open_and_still_refuse_changes() {
        let a = key().sign("r", b"wasm", &[9u8; 5000], RUNTIME_ID, 1);
        let place = Place::Rule {
            tenant: "t",
            rule: "r",
        };
        let b = bind_v1(&a, &place, "g1", &[1; 32]);
        assert!(is_artifact(&b));
        assert_eq!(stored_artifact(&b), &a[..]);
        let (v, how) = open_stored(&b, "t", "r", &trusted(), &gw_keys()).unwrap();
        assert_eq!((how, v.code), (Check::Binding, &[9u8; 5000][..]));
        let mut t = b.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(
            open_stored(&t, "t", "r", &trusted(), &gw_keys()).unwrap_err(),
            ArtifactError::BadBinding
        );
        assert_eq!(
            open_stored(&b, "u", "r", &trusted(), &gw_keys()).unwrap_err(),
            ArtifactError::BadBinding
        );
        // A first-format tag moved into the BLAKE3 format is no valid tag.
        let mut moved = BOUND_MAGIC.to_vec();
        moved.extend_from_slice(&b[BOUND_MAGIC_V1.len()..BOUND_MAGIC_V1.len() + 3]);
        moved.extend_from_slice(&[0u8; 32]);
        moved.extend_from_slice(&a);
        assert_eq!(
            open_stored(&moved, "t", "r", &trusted(), &gw_keys()).unwrap_err(),
            ArtifactError::BadBinding
        );
        // New bindings are BLAKE3.
        assert!(
            bind(&a, "t", "r", &gw_keys())
                .unwrap()
                .starts_with(BOUND_MAGIC)
        );
    }

    fn bound(tenant: &str, rule: &str) -> Vec<u8> {
        let a = key().sign(rule, b"wasm", &[9u8; 5000], RUNTIME_ID, 1);
        bind(&a, tenant, rule, &gw_keys()).unwrap()
    }

    #[test]
    fn bound_artifacts_open_without_the_signature_check() {
        let b = bound("t", "r");
        let (v, how) = open_stored(&b, "t", "r", &trusted(), &gw_keys()).unwrap();
        assert_eq!(how, Check::Binding);
        assert_eq!(v.code, &[9u8; 5000][..]);
        assert_eq!(v.header.name, "r");
        assert_eq!(parse_unverified(stored_artifact(&b)).unwrap().0.name, "r");
    }

    #[test]
    fn every_flipped_bit_of_a_bound_artifact_is_refused() {
        let b = bound("t", "r");
        let kid = BOUND_MAGIC.len() + 1..BOUND_MAGIC.len() + 3;
        for i in 0..b.len() {
            for bit in [0, 7] {
                let mut t = b.clone();
                t[i] ^= 1 << bit;
                match open_stored(&t, "t", "r", &trusted(), &gw_keys()) {
                    Err(_) => {}
                    // A changed binding key id names no gateway key: the
                    // full signature check runs, on the untouched artifact.
                    Ok((v, Check::Signature)) if kid.contains(&i) => {
                        assert_eq!(v.code, &[9u8; 5000][..])
                    }
                    Ok(_) => panic!("byte {i} bit {bit} accepted"),
                }
            }
        }
        // The code itself: refused by the MAC, not by a fallback.
        let mut t = b.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(
            open_stored(&t, "t", "r", &trusted(), &gw_keys()).unwrap_err(),
            ArtifactError::BadBinding
        );
        for cut in 0..b.len() {
            assert!(open_stored(&b[..cut], "t", "r", &trusted(), &gw_keys()).is_err());
        }
    }

    #[test]
    fn a_binding_is_for_one_tenant_rule_and_gateway() {
        let b = bound("t", "r");
        for (tenant, rule) in [("u", "r"), ("t", "s"), ("tr", ""), ("", "tr")] {
            assert!(open_stored(&b, tenant, rule, &trusted(), &gw_keys()).is_err());
        }
        // Same key id, another gateway secret: refused, no fallback.
        let other = BindKeys::new(vec![("g1".into(), [2; 32])]);
        assert_eq!(
            open_stored(&b, "t", "r", &trusted(), &other).unwrap_err(),
            ArtifactError::BadBinding
        );
    }

    #[test]
    fn signer_trust_is_still_checked_on_the_fast_path() {
        let b = bound("t", "r");
        let someone_else =
            TrustedKeys::parse(&SigningKey::from_seed("op2", [3; 32]).public_spec()).unwrap();
        assert!(matches!(
            open_stored(&b, "t", "r", &someone_else, &gw_keys()),
            Err(ArtifactError::UnknownKey(_))
        ));
        let a = key().sign("r", b"w", b"c", "wasmtime-1/pulley32", 1);
        let old_runtime = bind(&a, "t", "r", &gw_keys()).unwrap();
        assert!(matches!(
            open_stored(&old_runtime, "t", "r", &trusted(), &gw_keys()),
            Err(ArtifactError::WrongRuntime(_))
        ));
    }

    #[test]
    fn unbound_and_retired_key_artifacts_take_the_signature_path() {
        let a = key().sign("r", b"wasm", b"code", RUNTIME_ID, 1);
        let (_, how) = open_stored(&a, "t", "r", &trusted(), &gw_keys()).unwrap();
        assert_eq!(how, Check::Signature);
        let mut t = a.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(
            open_stored(&t, "t", "r", &trusted(), &gw_keys()).unwrap_err(),
            ArtifactError::Tampered
        );
        // Rotation: bound under g1, the gateway now has g2 then g1: fast path;
        // g1 retired: the signature decides, and still refuses tampering.
        let b = bound("t", "r");
        let rotated = BindKeys::new(vec![("g2".into(), [5; 32]), ("g1".into(), [1; 32])]);
        assert_eq!(
            open_stored(&b, "t", "r", &trusted(), &rotated).unwrap().1,
            Check::Binding
        );
        let retired = BindKeys::new(vec![("g2".into(), [5; 32])]);
        assert_eq!(
            open_stored(&b, "t", "r", &trusted(), &retired).unwrap().1,
            Check::Signature
        );
        let mut t = b.clone();
        *t.last_mut().unwrap() ^= 1;
        assert_eq!(
            open_stored(&t, "t", "r", &trusted(), &retired).unwrap_err(),
            ArtifactError::Tampered
        );
        assert!(bind(&a, "t", "r", &BindKeys::default()).is_err());
    }

    #[test]
    fn bind_keys_come_from_the_session_keys() {
        let ring = edgeauth_core::seal::KeyRing::parse(
            "s2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI,s1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
        )
        .unwrap();
        let keys = BindKeys::from_ring(&ring);
        assert_eq!(format!("{keys:?}"), r#"BindKeys["s2", "s1"]"#);
        let a = key().sign("r", b"wasm", b"code", RUNTIME_ID, 1);
        let b = bind(&a, "t", "r", &keys).unwrap();
        assert_eq!(&b[BOUND_MAGIC.len()..BOUND_MAGIC.len() + 3], b"\x02s2");
        assert_eq!(
            open_stored(&b, "t", "r", &trusted(), &keys).unwrap().1,
            Check::Binding
        );
    }

    #[test]
    fn a_version_is_bound_to_its_id_and_opens_nowhere_else() {
        let a = key().sign("r", b"wasm", &[9u8; 3000], RUNTIME_ID, 1);
        let v = version_id(&a);
        assert!(valid_version(&v), "{v}");
        assert_eq!(v, sha256_hex(&a)[..VERSION_LEN]);
        let at = |tenant, rule, version| Place::Version {
            tenant,
            rule,
            version,
        };
        let b = bind_at(&a, &at("t", "r", &v), &gw_keys()).unwrap();
        let (opened, how) = open_at(&b, &at("t", "r", &v), &trusted(), &gw_keys()).unwrap();
        assert_eq!((opened.header.name.as_str(), how), ("r", Check::Binding));
        // Another version id of the same rule, another tenant, or the
        // pre-version key of the same rule: refused by the MAC.
        let other = "0000000000000000";
        for place in [
            at("t", "r", other),
            at("u", "r", &v),
            Place::Rule {
                tenant: "t",
                rule: "r",
            },
        ] {
            assert_eq!(
                open_at(&b, &place, &trusted(), &gw_keys()).unwrap_err(),
                ArtifactError::BadBinding,
                "{place:?}"
            );
        }
        // On the slow path (retired gateway key, or stored unbound) the
        // digest decides which version the bytes are.
        let retired = BindKeys::new(vec![("g9".into(), [5; 32])]);
        assert_eq!(
            open_at(&b, &at("t", "r", &v), &trusted(), &retired)
                .unwrap()
                .1,
            Check::Signature
        );
        assert_eq!(
            open_at(&b, &at("t", "r", other), &trusted(), &retired).unwrap_err(),
            ArtifactError::WrongVersion(other.into())
        );
        assert_eq!(
            open_at(&a, &at("t", "r", other), &trusted(), &gw_keys()).unwrap_err(),
            ArtifactError::WrongVersion(other.into())
        );
        assert!(!valid_version("0123"));
        assert!(!valid_version("0123456789ABCDEF"));
        assert!(!valid_version("../../../../x/yy"));
    }

    #[test]
    fn key_specs_are_checked() {
        assert!(TrustedKeys::parse("k:AAAA").is_err());
        assert!(TrustedKeys::parse("no-colon").is_err());
        assert!(SigningKey::parse("k:short").is_err());
        assert!(TrustedKeys::parse("").unwrap().is_empty());
    }
}
