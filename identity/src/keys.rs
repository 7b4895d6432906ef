//! Ed25519 signing keys: PKCS#8 PEM files, the `kid` of each, and the JWK that publishes its public half.
//!
//! A key file is what `identity keygen <path>` writes (mode 0600, never overwriting). The `kid` is
//! derived from the public key alone, so the same file always yields the same `kid` on every replica
//! and after every restart, and two different keys practically never share one.

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, EncodePrivateKey,
    spki::der::{pem::LineEnding, zeroize::Zeroizing},
};
use rand::TryRngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// An Ed25519 private key and its `kid`. `Debug` shows the `kid` only.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
}

/// The `kid` of a raw 32-byte Ed25519 public key: base64url (no padding) of the first 8 bytes of
/// its SHA-256 — 11 characters, stable for a key, different between keys.
pub fn kid_for(public_key: &[u8; 32]) -> String {
    let digest = Sha256::digest(public_key);
    URL_SAFE_NO_PAD.encode(&digest[..8])
}

impl SigningKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.try_fill_bytes(seed.as_mut()).expect("the operating system's random source is available");
        Self::from_dalek(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let kid = kid_for(key.verifying_key().as_bytes());
        Self { key, kid }
    }

    /// Parses a PKCS#8 PEM Ed25519 private key (`-----BEGIN PRIVATE KEY-----`, what `openssl genpkey
    /// -algorithm ed25519` and `identity keygen` write).
    pub fn from_pkcs8_pem(pem: &str) -> anyhow::Result<Self> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map_err(|e| anyhow::anyhow!("not a PKCS#8 PEM Ed25519 private key: {e}"))?;
        Ok(Self::from_dalek(key))
    }

    /// The key as PKCS#8 PEM (wiped from memory when dropped).
    pub fn to_pkcs8_pem(&self) -> anyhow::Result<Zeroizing<String>> {
        self.key.to_pkcs8_pem(LineEnding::LF).map_err(|e| anyhow::anyhow!("encoding the key as PKCS#8: {e}"))
    }

    /// The key as PKCS#8 DER, what `jsonwebtoken`'s EdDSA encoding key takes.
    pub(crate) fn to_pkcs8_der(&self) -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let doc = self.key.to_pkcs8_der().map_err(|e| anyhow::anyhow!("encoding the key as PKCS#8: {e}"))?;
        Ok(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    /// Reads a key file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let pem = Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading the signing key {}", path.display()))?,
        );
        Self::from_pkcs8_pem(&pem).with_context(|| format!("signing key {}", path.display()))
    }

    /// Writes the key to a new file `path` (mode 0600). Never overwrites: an existing file is an error.
    /// The file appears complete or not at all (written aside, then linked into place).
    pub fn write_new(&self, path: &Path) -> anyhow::Result<()> {
        let pem = self.to_pkcs8_pem()?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), uuid::Uuid::new_v4().simple()));
        let written = (|| -> std::io::Result<()> {
            let mut f = private_file(&tmp)?;
            f.write_all(pem.as_bytes())?;
            f.sync_all()?;
            std::fs::hard_link(&tmp, path)
        })();
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("{} already exists; refusing to overwrite a signing key", path.display())
            }
            Err(e) => Err(e).with_context(|| format!("writing the signing key {}", path.display())),
        }
    }

    /// The key id published in the JWKS and put in every token header this key signs.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The public half as a JWK (`kty: OKP, crv: Ed25519`).
    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(self.public_key()),
            kid: self.kid.clone(),
            alg: "EdDSA".into(),
            key_use: "sig".into(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.public_key() == other.public_key()
    }
}

/// One public key of the JWKS (RFC 8037: an Ed25519 key is `kty: OKP, crv: Ed25519`, `x` the raw
/// public key in base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwk {
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The raw 32-byte public key, base64url without padding.
    pub x: String,
    pub kid: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
}

/// `GET /.well-known/jwks.json`: every live public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// Where the signing keys come from.
#[derive(Clone, Debug)]
pub enum KeySource {
    /// `IDENTITY_SIGNING_KEYS`: PKCS#8 PEM files; the first signs, all are published.
    Files(Vec<PathBuf>),
    /// Development only (`SAGAWAY_ENV=dev` without `IDENTITY_SIGNING_KEYS`): one key file, generated
    /// on first use and reused afterwards.
    DevFile(PathBuf),
    /// Keys already in memory (tests); the first signs.
    Keys(Vec<SigningKey>),
    /// Not configured: loading fails, so the service refuses to start.
    Missing,
}

impl KeySource {
    /// The keys, the signing one first. Never empty.
    pub fn load(&self) -> anyhow::Result<Vec<SigningKey>> {
        let keys = match self {
            KeySource::Files(paths) => paths.iter().map(|p| SigningKey::load(p)).collect::<anyhow::Result<Vec<_>>>()?,
            KeySource::DevFile(path) => {
                let key = load_or_create(path)?;
                tracing::warn!(
                    path = %path.display(),
                    kid = key.kid(),
                    "using a DEVELOPMENT signing key (SAGAWAY_ENV=dev, IDENTITY_SIGNING_KEYS unset); never do this in production"
                );
                vec![key]
            }
            KeySource::Keys(keys) => keys.clone(),
            KeySource::Missing => bail!(
                "IDENTITY_SIGNING_KEYS is not set: give it the comma-separated paths of Ed25519 PKCS#8 PEM key files \
                 (create one with `identity keygen <path>`), or set SAGAWAY_ENV=dev to use a generated development key"
            ),
        };
        if keys.is_empty() {
            bail!("IDENTITY_SIGNING_KEYS names no key file");
        }
        let mut kids: Vec<&str> = keys.iter().map(SigningKey::kid).collect();
        kids.sort_unstable();
        if let Some(w) = kids.windows(2).find(|w| w[0] == w[1]) {
            bail!("IDENTITY_SIGNING_KEYS lists the key {} twice", w[0]);
        }
        Ok(keys)
    }
}

/// The development key at `path`: read it, or generate it once (a concurrent first start of another
/// process loses the race to write it and reads the winner's key).
fn load_or_create(path: &Path) -> anyhow::Result<SigningKey> {
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        match SigningKey::generate().write_new(path) {
            Ok(()) => tracing::info!(path = %path.display(), "generated a development signing key"),
            Err(_) if path.exists() => {}
            Err(e) => return Err(e),
        }
    }
    SigningKey::load(path)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "key".into())
}

#[cfg(unix)]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8032 §7.1, test 1.
    const RFC8032_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn rfc8032_key() -> SigningKey {
        let secret: [u8; 32] = hex_bytes(RFC8032_SECRET).try_into().unwrap();
        SigningKey::from_dalek(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn kid_is_base64url_of_the_first_8_bytes_of_sha256_of_the_public_key() {
        let public: [u8; 32] = hex_bytes(RFC8032_PUBLIC).try_into().unwrap();
        // sha256(public) = 21fe31dfa154a261...; its first 8 bytes in base64url without padding.
        assert_eq!(kid_for(&public), "If4x36FUomE");
        let key = rfc8032_key();
        assert_eq!(key.public_key(), public);
        assert_eq!(key.kid(), "If4x36FUomE");
    }

    #[test]
    fn kid_is_stable_for_a_key_and_differs_between_keys() {
        let a = SigningKey::generate();
        let b = SigningKey::generate();
        let a_again = SigningKey::from_pkcs8_pem(&a.to_pkcs8_pem().unwrap()).unwrap();
        assert_eq!(a.kid(), a_again.kid());
        assert_eq!(a.kid().len(), 11);
        assert_ne!(a.kid(), b.kid());
    }

    #[test]
    fn jwk_publishes_the_raw_public_key() {
        let jwk = rfc8032_key().jwk();
        assert_eq!((jwk.kty.as_str(), jwk.crv.as_str(), jwk.alg.as_str(), jwk.key_use.as_str()), ("OKP", "Ed25519", "EdDSA", "sig"));
        assert_eq!(URL_SAFE_NO_PAD.decode(&jwk.x).unwrap(), hex_bytes(RFC8032_PUBLIC));
        let json = serde_json::to_value(&jwk).unwrap();
        assert_eq!(json["use"], "sig");
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = rfc8032_key();
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid()) && !shown.contains("9d61") && !shown.to_lowercase().contains("secret"), "{shown}");
    }

    #[test]
    fn write_new_makes_a_private_file_and_never_overwrites() {
        let dir = std::env::temp_dir().join(format!("identity-keys-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("signing.pem");
        let key = SigningKey::generate();
        key.write_new(&path).unwrap();
        assert_eq!(SigningKey::load(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let err = SigningKey::generate().write_new(&path).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(SigningKey::load(&path).unwrap(), key, "the first key is still there");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_dev_key_is_generated_once_then_reused() {
        let dir = std::env::temp_dir().join(format!("identity-dev-{}", uuid::Uuid::new_v4().simple()));
        let source = KeySource::DevFile(dir.join("identity").join("dev-signing-key.pem"));
        let first = source.load().unwrap();
        let second = source.load().unwrap();
        assert_eq!(first, second);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_keys_are_a_clear_error() {
        let err = KeySource::Missing.load().unwrap_err().to_string();
        assert!(err.contains("IDENTITY_SIGNING_KEYS") && err.contains("keygen"), "{err}");
        assert!(KeySource::Keys(vec![]).load().is_err());
        let k = SigningKey::generate();
        assert!(KeySource::Keys(vec![k.clone(), k]).load().unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn reads_a_pem_written_by_openssl() {
        // The RFC 8032 test key in the form `openssl genpkey -algorithm ed25519` writes (PKCS#8 v1).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n";
        assert_eq!(SigningKey::from_pkcs8_pem(pem).unwrap(), rfc8032_key());
        assert!(SigningKey::from_pkcs8_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }
}
