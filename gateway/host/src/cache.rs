//! Compiled-component cache: Cranelift runs once per distinct wasm file and
//! engine configuration; later starts map the serialized artifact instead.
//!
//! The key covers everything that makes an artifact unusable: the wasm bytes,
//! the wasmtime version, and the engine's compilation settings (through
//! `Engine::precompile_compatibility_hash`). A stale or damaged entry is
//! recompiled rather than trusted.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Pinned with `=` in Cargo.toml; part of the key so an upgrade never maps an
/// artifact from another version.
const WASMTIME_VERSION: &str = "48.0.8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Compiled,
    /// Compiled, but the artifact could not be stored (read-only cache).
    CompiledUncached,
}

/// Where artifacts live: `$EDGEAUTH_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/edgeauth/components`, else `~/.cache/edgeauth/components`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("EDGEAUTH_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("edgeauth").join("components"))
}

/// Feeds `Hash` output into SHA-256 so the engine fingerprint is stable
/// across processes (std's hashers are not meant to be persisted).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        // Never used: the digest is read from the inner state instead.
        0
    }
}

pub fn cache_key(engine: &Engine, wasm: &[u8]) -> String {
    let mut h = ShaHasher(Sha256::new());
    h.0.update(Sha256::digest(wasm));
    h.0.update(WASMTIME_VERSION.as_bytes());
    engine.precompile_compatibility_hash().hash(&mut h);
    let digest = h.0.finalize();
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads `wasm_path` as a component, through the cache when `cache_dir` is set.
pub fn load(
    engine: &Engine,
    wasm_path: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, Outcome)> {
    let wasm =
        fs::read(wasm_path).with_context(|| format!("cannot read {}", wasm_path.display()))?;
    load_bytes(engine, &wasm, wasm_path, cache_dir)
}

/// [`load`] for wasm already in memory (`edgeauth rule` commands: a rule
/// module is first turned into a component); `path` names it in messages.
pub fn load_bytes(
    engine: &Engine,
    wasm: &[u8],
    path: &Path,
    cache_dir: Option<&Path>,
) -> Result<(Component, Outcome)> {
    let Some(dir) = cache_dir else {
        return Ok((compile(engine, wasm, path)?, Outcome::CompiledUncached));
    };
    let artifact = dir.join(format!("{}.cwasm", cache_key(engine, wasm)));
    if artifact.exists() {
        // SAFETY: the file is one this program serialized with an engine of
        // the same version and settings (both are in its name), in a
        // directory owned by the user running it. wasmtime still validates
        // the header and refuses incompatible artifacts.
        match unsafe { Component::deserialize_file(engine, &artifact) } {
            Ok(component) => return Ok((component, Outcome::Hit)),
            Err(e) => eprintln!(
                "edgeauth: ignoring unusable cached artifact {}: {e}",
                artifact.display()
            ),
        }
    }
    let component = compile(engine, wasm, path)?;
    let stored = component
        .serialize()
        .map_err(anyhow::Error::from)
        .and_then(|bytes| store_atomically(dir, &artifact, &bytes));
    match stored {
        Ok(()) => Ok((component, Outcome::Compiled)),
        Err(e) => {
            eprintln!("edgeauth: not caching the compiled component: {e:#}");
            Ok((component, Outcome::CompiledUncached))
        }
    }
}

fn compile(engine: &Engine, wasm: &[u8], path: &Path) -> Result<Component> {
    let start = Instant::now();
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .with_context(|| format!("{} is not a valid component", path.display()))?;
    eprintln!(
        "edgeauth: compiled {} in {} ms",
        path.display(),
        start.elapsed().as_millis()
    );
    Ok(component)
}

/// Concurrent hosts may compile the same component; each writes its own
/// temporary file and the rename makes whichever finishes last visible whole.
fn store_atomically(dir: &Path, artifact: &Path, bytes: &[u8]) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = dir.join(format!(".{}.{}.tmp", std::process::id(), rand_suffix()));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, artifact)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", artifact.display()))
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest valid component: magic, version 0x0d, layer 1.
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn compiles_once_then_loads_from_cache() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("c.wasm");
        fs::write(&wasm, EMPTY_COMPONENT).unwrap();
        let cache = dir.path().join("cache");
        let engine = Engine::default();

        let (_, first) = load(&engine, &wasm, Some(&cache)).unwrap();
        assert_eq!(first, Outcome::Compiled);
        let (_, second) = load(&engine, &wasm, Some(&cache)).unwrap();
        assert_eq!(second, Outcome::Hit);

        // A damaged artifact is replaced, not trusted.
        let artifacts: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(artifacts.len(), 1);
        fs::write(&artifacts[0], b"garbage").unwrap();
        let (_, third) = load(&engine, &wasm, Some(&cache)).unwrap();
        assert_eq!(third, Outcome::Compiled);
        let (_, fourth) = load(&engine, &wasm, Some(&cache)).unwrap();
        assert_eq!(fourth, Outcome::Hit);
    }

    #[test]
    fn key_depends_on_bytes_and_engine_settings() {
        let engine = Engine::default();
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        let other = Engine::new(&config).unwrap();
        let k = cache_key(&engine, EMPTY_COMPONENT);
        assert_eq!(k, cache_key(&engine, EMPTY_COMPONENT));
        assert_eq!(k.len(), 64);
        assert_ne!(k, cache_key(&engine, b"\0asm\x0d\0\x01\0\0"));
        assert_ne!(k, cache_key(&other, EMPTY_COMPONENT));
    }

    #[test]
    fn invalid_wasm_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("bad.wasm");
        fs::write(&wasm, b"not wasm").unwrap();
        let err = load(&Engine::default(), &wasm, None)
            .map(|_| ())
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("not a valid component"),
            "{err:#}"
        );
    }
}
