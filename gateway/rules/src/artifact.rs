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

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_compact::{KeyPair, PublicKey, Seed, Signature};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8] = b"EDGEAUTH-RULE1\n";
const DOMAIN: &[u8] = b"edgeauth-rule-artifact-v1\0";
const MAX_HEADER: usize = 4096;
/// Largest artifact accepted (upload and load).
pub const MAX_ARTIFACT: usize = 8 << 20;

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

    #[test]
    fn key_specs_are_checked() {
        assert!(TrustedKeys::parse("k:AAAA").is_err());
        assert!(TrustedKeys::parse("no-colon").is_err());
        assert!(SigningKey::parse("k:short").is_err());
        assert!(TrustedKeys::parse("").unwrap().is_empty());
    }
}
