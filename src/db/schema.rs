//! Where the database's schema stands against the migrations this build carries. Replicas
//! of two versions share one database during a rolling upgrade, so both directions
//! happen: a new binary before `alexandria migrate` has run (behind: it must not serve)
//! and an old binary after it has (ahead: migrations are additive, it serves on).

use sqlx::PgPool;

use super::MIGRATOR;

/// A migration of this build that the database lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingMigration {
    pub version: i64,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaStatus {
    /// Every migration this build knows is applied, and no other.
    Current,
    /// Migrations of this build are not applied: serving would use tables or columns that
    /// are not there.
    Behind { missing: Vec<MissingMigration> },
    /// Every migration this build knows is applied, and newer ones it does not know: a
    /// newer version has migrated the database.
    Ahead { unknown: Vec<i64> },
}

impl SchemaStatus {
    /// What an operator reads in the log and in `/readyz` when the schema is not current.
    pub fn describe(&self) -> Option<String> {
        match self {
            SchemaStatus::Current => None,
            SchemaStatus::Behind { missing } => {
                let names: Vec<String> = missing.iter().map(|m| format!("{} ({})", m.version, m.description)).collect();
                Some(format!(
                    "the database schema is older than this binary: {} migration{} not applied: {}; \
                     run `alexandria migrate`",
                    missing.len(),
                    if missing.len() == 1 { " is" } else { "s are" },
                    names.join(", ")
                ))
            }
            SchemaStatus::Ahead { unknown } => {
                let versions: Vec<String> = unknown.iter().map(i64::to_string).collect();
                Some(format!(
                    "the database schema is newer than this binary (migrations {} are not known to it), \
                     which works: migrations only add",
                    versions.join(", ")
                ))
            }
        }
    }
}

/// Compares the applied migrations with this build's. A database never migrated is
/// behind by every migration.
pub async fn schema_status(pool: &PgPool) -> Result<SchemaStatus, sqlx::Error> {
    let has_table: bool =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL").fetch_one(pool).await?;
    let applied: Vec<i64> = if has_table {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?
    } else {
        Vec::new()
    };
    Ok(compare(&applied))
}

fn compare(applied: &[i64]) -> SchemaStatus {
    let known: Vec<_> = MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()).collect();
    let missing: Vec<MissingMigration> = known
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .map(|m| MissingMigration { version: m.version, description: m.description.to_string() })
        .collect();
    if !missing.is_empty() {
        return SchemaStatus::Behind { missing };
    }
    let unknown: Vec<i64> =
        applied.iter().copied().filter(|version| !known.iter().any(|m| m.version == *version)).collect();
    if unknown.is_empty() {
        SchemaStatus::Current
    } else {
        SchemaStatus::Ahead { unknown }
    }
}

/// A log restored into another PostgreSQL cluster can carry transaction ids ahead of that
/// cluster's counter. Projections read in `(tx_id, position)` order, so every event
/// appended afterwards would sort before the checkpoint and never be projected — silently:
/// lag would read 0. `Err` with what to do when that is the case.
pub async fn ensure_log_behind_cluster(pool: &PgPool) -> anyhow::Result<()> {
    // pg_snapshot_xmax: the next transaction id, read without taking one.
    let (highest, next, ahead): (Option<String>, String, Option<bool>) = sqlx::query_as(
        "SELECT highest::text, next::text, highest >= next FROM ( \
           SELECT GREATEST((SELECT max(tx_id) FROM events), (SELECT max(last_tx_id) FROM projection_checkpoints)) \
                    AS highest, \
                  pg_snapshot_xmax(pg_current_snapshot()) AS next) ids",
    )
    .fetch_one(pool)
    .await?;
    if ahead == Some(true) {
        anyhow::bail!(
            "the event log holds transaction id {} but this PostgreSQL cluster is only at {next}: the \
             database was restored from another cluster. Events appended now would never be projected. \
             Advance the cluster's transaction counter past it first (docs/OPERATIONS.md, \"Restore\")",
            highest.unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_known() -> Vec<i64> {
        MIGRATOR.iter().map(|m| m.version).collect()
    }

    #[test]
    fn every_known_migration_applied_is_current() {
        assert_eq!(compare(&all_known()), SchemaStatus::Current);
        assert_eq!(SchemaStatus::Current.describe(), None);
    }

    #[test]
    fn a_missing_migration_is_behind_and_named() {
        let mut applied = all_known();
        let last = applied.pop().expect("migrations");
        let status = compare(&applied);
        let SchemaStatus::Behind { missing } = &status else { panic!("{status:?}") };
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].version, last);
        let text = status.describe().expect("a description");
        assert!(text.contains(&last.to_string()) && text.contains("alexandria migrate"), "{text}");
        assert!(text.contains("1 migration is not applied"), "{text}");
    }

    #[test]
    fn an_unknown_newer_migration_is_ahead() {
        let mut applied = all_known();
        applied.push(99_991_231_000_000);
        assert_eq!(compare(&applied), SchemaStatus::Ahead { unknown: vec![99_991_231_000_000] });
    }

    #[test]
    fn behind_wins_over_ahead() {
        assert!(matches!(compare(&[99_991_231_000_000]), SchemaStatus::Behind { .. }));
    }
}
