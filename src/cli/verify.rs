//! `alexandria events verify` and `alexandria audit public-key`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};

use super::Database;
use crate::audit::signing::{parse_public_key, AuditKey, DEFAULT_KEY_FILE_NAME};
use crate::audit::verify::VerifyReport;
use crate::audit::{Checkpoint, ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
use crate::cli::args::DatabaseArgs;

/// Where the audit signing key is.
#[derive(Debug, Clone, Args)]
pub struct AuditKeyArgs {
    /// The sealer's Ed25519 signing key (64 hex digits, mode 0600), kept outside the
    /// database. Generated on first start if absent. Default: `$ALEXANDRIA_DATA_DIR/audit-signing-key`.
    #[arg(long, env = "ALEXANDRIA_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,
}

impl AuditKeyArgs {
    pub fn path(&self, data_dir: &Path) -> PathBuf {
        self.audit_key_file.clone().unwrap_or_else(|| data_dir.join(DEFAULT_KEY_FILE_NAME))
    }
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub key: AuditKeyArgs,
    /// Check this export file instead of the database (needs no database).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// The public key checkpoints must be signed with (64 hex digits, from `alexandria
    /// audit public-key`). Default: the key file's, when it can be read; otherwise
    /// checkpoints are not checked.
    #[arg(long)]
    pub public_key: Option<String>,
    /// A signed checkpoint held apart from the log (a file with its JSON, as exported,
    /// logged or pushed): the chain must reach it with the same hash. Repeatable.
    #[arg(long)]
    pub checkpoint: Vec<PathBuf>,
    /// With `--file`: the chain the file is, `events` (`events export`, `GET /admin/events`)
    /// or `admin_audit` (`GET /admin/audit/export`). Default: the chain of the
    /// checkpoints given, else `events`.
    #[arg(long, requires = "file")]
    pub chain: Option<String>,
}

/// The chain an export file is checked as: `--chain`, else the one every checkpoint given
/// names, else the event log. A checkpoint of the other chain is refused: it says nothing
/// about this file, and ignoring it would let a check pass that the auditor meant to bind.
fn file_chain(named: Option<&str>, checkpoints: &[Checkpoint]) -> anyhow::Result<&'static str> {
    let chain = match named {
        Some(EVENTS_CHAIN) => EVENTS_CHAIN,
        Some(ADMIN_AUDIT_CHAIN) => ADMIN_AUDIT_CHAIN,
        Some(other) => anyhow::bail!("unknown chain {other:?}: `{EVENTS_CHAIN}` or `{ADMIN_AUDIT_CHAIN}`"),
        None if !checkpoints.is_empty() && checkpoints.iter().all(|c| c.chain == ADMIN_AUDIT_CHAIN) => {
            ADMIN_AUDIT_CHAIN
        }
        None => EVENTS_CHAIN,
    };
    if let Some(other) = checkpoints.iter().find(|c| c.chain != chain) {
        anyhow::bail!(
            "a checkpoint given is of the {:?} chain, and the file is checked as the {chain:?} chain (--chain)",
            other.chain
        );
    }
    Ok(chain)
}

fn read_checkpoint(path: &Path) -> anyhow::Result<Checkpoint> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(text.trim()).with_context(|| format!("{} is not JSON", path.display()))?;
    let value = value.get("checkpoint").cloned().unwrap_or(value);
    serde_json::from_value(value).with_context(|| format!("{} is not a signed checkpoint", path.display()))
}

fn trusted_key(args: &VerifyArgs) -> anyhow::Result<Option<VerifyingKey>> {
    if let Some(text) = &args.public_key {
        return parse_public_key(text).map(Some);
    }
    if args.file.is_some() {
        return Ok(None); // an auditor's file check trusts only the key it is given
    }
    let path = args.key.path(&args.database.data_dir);
    Ok(AuditKey::load(&path).ok().map(|key| key.public_key()))
}

fn bar(what: &str) -> ProgressBar {
    ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template(&format!("{{spinner}} {what} {{pos}} rows ({{per_sec}})"))
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    )
}

/// Prints a chain's verdict; `true` if it holds.
fn report(chain: &str, report: &VerifyReport, checked_keys: bool) -> bool {
    match &report.divergence {
        None => {
            let head = report.head.map_or_else(
                || "nothing sealed yet".to_owned(),
                |(position, hash)| format!("head position {position}, hash {}", hex::encode(hash)),
            );
            println!(
                "{chain}: OK: {} sealed ({head}), {} not sealed yet, {} checkpoints verified",
                report.sealed, report.unsealed, report.checkpoints_verified
            );
            if report.checkpoints_unchecked > 0 && !checked_keys {
                println!(
                    "{chain}: {} checkpoints not checked: give --public-key to check their signatures",
                    report.checkpoints_unchecked
                );
            }
            true
        }
        Some(divergence) => {
            println!("{chain}: FAILED at {divergence}");
            false
        }
    }
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let key = trusted_key(&args)?;
    let checkpoints = args.checkpoint.iter().map(|path| read_checkpoint(path)).collect::<anyhow::Result<Vec<_>>>()?;
    let started = Instant::now();
    let ok = match &args.file {
        Some(file) => {
            let chain = file_chain(args.chain.as_deref(), &checkpoints)?;
            let progress = bar("verifying");
            let result = crate::audit::verify_file(file, chain, key, checkpoints, |n| progress.set_position(n));
            progress.finish_and_clear();
            let result = result?;
            let elapsed = started.elapsed().as_secs_f64();
            eprintln!(
                "checked {} lines of {} in {elapsed:.2} s ({:.0} lines/s)",
                result.events,
                file.display(),
                result.events as f64 / elapsed.max(1e-9)
            );
            report(chain, &result, key.is_some())
        }
        None => {
            let db = Database::open(&args.database).await?;
            let progress = bar("verifying");
            let result = crate::audit::verify_live(&db.pool, key, checkpoints, |n| progress.set_position(n)).await;
            progress.finish_and_clear();
            db.close().await?;
            let [events, admin] = result?;
            eprintln!("checked the database in {:.2} s", started.elapsed().as_secs_f64());
            let events_ok = report(events.0, &events.1, key.is_some());
            report(admin.0, &admin.1, key.is_some()) && events_ok
        }
    };
    if key.is_none() {
        eprintln!("no public key: checkpoint signatures were not checked (pass --public-key)");
    }
    if !ok {
        anyhow::bail!("history diverges from what was sealed (see above)");
    }
    Ok(())
}

/// `alexandria audit public-key`: the sealer's public key, generating the key file if
/// there is none yet.
pub fn print_public_key(database: &DatabaseArgs, key: &AuditKeyArgs) -> anyhow::Result<()> {
    let path = key.path(&database.data_dir);
    let key = AuditKey::load_or_create(&path)?;
    println!("{}", key.public_key_hex());
    eprintln!(
        "the public key of {} (give it to auditors: `alexandria events verify --public-key ...`)",
        path.display()
    );
    Ok(())
}

/// `alexandria audit seal`: both chains sealed up to the snapshot horizon, with progress.
pub async fn seal_now(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    use crate::audit::sealer::{seal_admin_batch, seal_event_batch};
    const BATCH: i64 = 5000;
    let started = Instant::now();
    let progress = bar("sealing");
    let mut events = 0u64;
    loop {
        let (sealed, _) = seal_event_batch(pool, BATCH).await?;
        events += sealed as u64;
        progress.set_position(events);
        if (sealed as i64) < BATCH {
            break;
        }
    }
    let mut admin = 0u64;
    loop {
        let (sealed, _) = seal_admin_batch(pool, BATCH).await?;
        admin += sealed as u64;
        if (sealed as i64) < BATCH {
            break;
        }
    }
    progress.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    eprintln!(
        "sealed {events} events and {admin} admin audit rows in {elapsed:.2} s ({:.0} events/s)",
        events as f64 / elapsed.max(1e-9)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint_of(chain: &str) -> Checkpoint {
        Checkpoint {
            chain: chain.to_owned(),
            seq: 1,
            position: 1,
            hash: "0".repeat(64),
            signed_at: "2026-12-03T00:00:00Z".to_owned(),
            public_key: "0".repeat(64),
            signature: "0".repeat(128),
        }
    }

    #[test]
    fn a_files_chain_is_the_one_named_else_its_checkpoints_else_the_event_log() {
        let admin = [checkpoint_of(ADMIN_AUDIT_CHAIN)];
        let events = [checkpoint_of(EVENTS_CHAIN)];
        assert_eq!(file_chain(None, &[]).unwrap(), EVENTS_CHAIN);
        assert_eq!(file_chain(None, &admin).unwrap(), ADMIN_AUDIT_CHAIN);
        assert_eq!(file_chain(None, &events).unwrap(), EVENTS_CHAIN);
        assert_eq!(file_chain(Some("admin_audit"), &[]).unwrap(), ADMIN_AUDIT_CHAIN);
        assert!(file_chain(Some("audit"), &[]).unwrap_err().to_string().contains("unknown chain"));
        let mixed = [checkpoint_of(EVENTS_CHAIN), checkpoint_of(ADMIN_AUDIT_CHAIN)];
        assert!(file_chain(None, &mixed).unwrap_err().to_string().contains("\"admin_audit\" chain"));
        assert!(file_chain(Some("admin_audit"), &events).is_err());
    }
}
