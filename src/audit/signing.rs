//! Signed checkpoints: the key (a file outside the database), the signed bytes, signing
//! and checking. docs/AUDIT.md, "Checkpoints".

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use alexandria_domain::write_canonical_json;
use anyhow::Context;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The prefix of every signed message: a signature over a checkpoint can never be taken
/// for a signature over anything else.
pub const MESSAGE_PREFIX: &[u8] = b"alexandria-audit-checkpoint-v1\n";

/// The key file's name under `$ALEXANDRIA_DATA_DIR` when `ALEXANDRIA_AUDIT_KEY_FILE` is unset.
pub const DEFAULT_KEY_FILE_NAME: &str = "audit-signing-key";

/// The sealer's signing key. Its `Debug` shows the public key only; the secret half is
/// zeroed on drop and never logged, printed or stored in the database.
pub struct AuditKey {
    signing: SigningKey,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("public_key", &self.public_key_hex()).finish_non_exhaustive()
    }
}

impl AuditKey {
    /// Reads the key file (64 hex digits: the Ed25519 secret seed), creating it (mode
    /// 0600, in a 0700 directory) with a fresh key if it does not exist. Two processes
    /// starting at once agree on one key: the file is linked into place, never replaced.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        match Self::load(path) {
            Ok(key) => return Ok(key),
            Err(error) if !is_not_found(&error) => return Err(error),
            Err(_) => {}
        }
        let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create the directory of the audit key file {}", path.display()))?;
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        let key = AuditKey { signing: SigningKey::from_bytes(&seed) };
        seed.fill(0);
        let partial = partial_path(path);
        let write = || -> std::io::Result<()> {
            let _ = std::fs::remove_file(&partial);
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
            let mut text = hex::encode(key.signing.to_bytes());
            text.push('\n');
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            let linked = std::fs::hard_link(&partial, path);
            std::fs::remove_file(&partial)?;
            match linked {
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
                other => other,
            }
        };
        write().with_context(|| format!("cannot write the audit key file {}", path.display()))?;
        tracing::info!(path = %path.display(), public_key = %key.public_key_hex(), "generated the audit signing key");
        // Whoever linked first wins; read back what is there.
        Self::load(path)
    }

    /// Reads an existing key file. A file every account may read is refused: the key
    /// signs history. (Group access is allowed: a Kubernetes Secret volume gives the
    /// pod's `fsGroup` read access.)
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let metadata =
            std::fs::metadata(path).with_context(|| format!("cannot read the audit key file {}", path.display()))?;
        if metadata.permissions().mode() & 0o007 != 0 {
            anyhow::bail!(
                "the audit key file {} may be read by every account (mode {:o}); make it 0600",
                path.display(),
                metadata.permissions().mode() & 0o777
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the audit key file {}", path.display()))?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed).map_err(|_| {
            anyhow::anyhow!("the audit key file {} does not hold 64 hex digits (an Ed25519 secret key)", path.display())
        })?;
        let key = AuditKey { signing: SigningKey::from_bytes(&seed) };
        seed.fill(0);
        Ok(key)
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The public key as 64 lowercase hex digits (what `alexandria audit public-key` prints).
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.public_key().to_bytes())
    }

    /// Signs a checkpoint of `chain` at its `seq`-th seal.
    pub fn sign(&self, chain: &str, seq: i64, position: i64, hash: &[u8; 32], signed_at: String) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            chain: chain.to_owned(),
            seq,
            position,
            hash: hex::encode(hash),
            signed_at,
            public_key: self.public_key_hex(),
            signature: String::new(),
        };
        checkpoint.signature = hex::encode(self.signing.sign(&checkpoint.message()).to_bytes());
        checkpoint
    }
}

fn is_not_found(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound))
}

fn partial_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// A public key from 64 hex digits.
pub fn parse_public_key(text: &str) -> anyhow::Result<VerifyingKey> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| anyhow::anyhow!("a public key is 64 hex digits (`alexandria audit public-key` prints it)"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| anyhow::anyhow!("{} is not an Ed25519 public key", text.trim()))
}

/// A signed statement: "the first `seq` seals of `chain` end at `position` with `hash`",
/// made at `signed_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// `events` or `admin_audit`.
    pub chain: String,
    /// How many seals the chain has at this checkpoint (the last one's place).
    pub seq: i64,
    /// The last sealed event's global position (an admin audit row's id).
    pub position: i64,
    /// The last seal's hash, 64 lowercase hex digits.
    pub hash: String,
    /// When it was signed, RFC 3339 UTC (signed as written).
    pub signed_at: String,
    /// The signer's public key (a hint: a verifier checks with the key it trusts).
    pub public_key: String,
    /// Ed25519 over [`MESSAGE_PREFIX`] and the canonical JSON of the other five fields.
    pub signature: String,
}

/// Why a checkpoint is not to be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("its signature is not 128 hex digits")]
    MalformedSignature,
    #[error("its signature does not verify with the trusted public key (forged, altered, or signed by another key)")]
    BadSignature,
}

impl Checkpoint {
    /// The signed bytes: [`MESSAGE_PREFIX`], then the canonical JSON of
    /// `{chain, hash, position, seq, signed_at}`.
    pub fn message(&self) -> Vec<u8> {
        let mut message = MESSAGE_PREFIX.to_vec();
        let signed = json!({
            "chain": self.chain,
            "seq": self.seq,
            "position": self.position,
            "hash": self.hash,
            "signed_at": self.signed_at,
        });
        write_canonical_json(&signed, &mut message);
        message
    }

    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let mut bytes = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut bytes).map_err(|_| CheckpointError::MalformedSignature)?;
        key.verify(&self.message(), &Signature::from_bytes(&bytes)).map_err(|_| CheckpointError::BadSignature)
    }

    /// The checkpoint as one export line: `{"checkpoint": {...}}`.
    pub fn to_line(&self) -> serde_json::Value {
        json!({ "checkpoint": self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_created_0600_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("audit");
        let first = AuditKey::load_or_create(&path).unwrap();
        let again = AuditKey::load_or_create(&path).unwrap();
        assert_eq!(first.public_key_hex(), again.public_key_hex());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!format!("{first:?}").contains(&hex::encode(first.signing.to_bytes())));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(AuditKey::load(&path).unwrap_err().to_string().contains("0600"));
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_not_once_altered() {
        let dir = tempfile::tempdir().unwrap();
        let key = AuditKey::load_or_create(&dir.path().join("a")).unwrap();
        let other = AuditKey::load_or_create(&dir.path().join("b")).unwrap();
        let checkpoint = key.sign("events", 3, 17, &[9; 32], "2026-12-03T07:00:00Z".to_owned());
        assert_eq!(checkpoint.verify(&key.public_key()), Ok(()));
        assert_eq!(checkpoint.verify(&other.public_key()), Err(CheckpointError::BadSignature));
        let altered = Checkpoint { seq: 4, ..checkpoint.clone() };
        assert_eq!(altered.verify(&key.public_key()), Err(CheckpointError::BadSignature));
        assert!(String::from_utf8(checkpoint.message()).unwrap().ends_with(&format!(
            "{{\"chain\":\"events\",\"hash\":\"{}\",\"position\":17,\"seq\":3,\"signed_at\":\"2026-12-03T07:00:00Z\"}}",
            hex::encode([9u8; 32])
        )));
    }
}
