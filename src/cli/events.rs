use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::Database;
use crate::cli::args::DatabaseArgs;
use crate::event_export::{self, ExportFilter};
use crate::event_skip;
use crate::names::Actor;

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Write the event log as JSON lines in global order (the auditor's copy).
    Export {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Only this permission request's events.
        #[arg(long)]
        request: Option<Uuid>,
        /// Only events after the event at this global position, in chain order (an
        /// earlier export's last position; 0: from the start).
        #[arg(long, default_value_t = 0)]
        since: i64,
        /// Stop at a signed checkpoint (`latest`, or its seal number) and end with its
        /// line, signature included.
        #[arg(long)]
        checkpoint: Option<String>,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Check the audit chain, from the database or an export file: recomputes every hash,
    /// checks checkpoint signatures, and names the first position where history diverges
    /// (exit status 1). docs/AUDIT.md.
    Verify(super::verify::VerifyArgs),
    /// Show a request's state after each of its events.
    Replay {
        #[command(flatten)]
        database: DatabaseArgs,
        #[arg(long)]
        request: Uuid,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Read past a stored event that cannot be read (one written around the gateway),
    /// which stops the projections and its request: records an `EventSkipped` event, after
    /// which every reader treats that event as absent. The log is never changed. Only an
    /// unreadable event can be skipped; `projections status` names the position.
    Skip {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The event's global position (`projections status`, `events export`).
        position: i64,
        /// Why it is skipped, kept in the log with the skip.
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(command: EventsCommand) -> anyhow::Result<()> {
    match command {
        EventsCommand::Verify(args) => super::verify::run(args).await,
        EventsCommand::Export { database, request, since, checkpoint, output } => {
            if since < 0 {
                anyhow::bail!("--since must be a position of 0 or more");
            }
            let db = Database::open(&database).await?;
            let result = async {
                let until = match checkpoint.as_deref() {
                    None => None,
                    Some(choice) => Some(chosen_checkpoint(&db.pool, choice).await?),
                };
                let filter = ExportFilter { request, since, until };
                let total = event_export::count_for_export(&db.pool, &filter).await?;
                let bar = ProgressBar::new(total.max(0) as u64).with_style(
                    ProgressStyle::with_template("exporting [{bar:40}] {pos}/{len} events ({per_sec})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                let mut sink: Box<dyn Write> = match &output {
                    Some(path) => Box::new(BufWriter::new(
                        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
                    )),
                    None => Box::new(BufWriter::new(std::io::stdout().lock())),
                };
                let started = Instant::now();
                let summary =
                    event_export::export_events(&db.pool, &filter, &mut sink, |n| bar.set_position(n)).await?;
                bar.finish_and_clear();
                let range = match (summary.first_position, summary.last_position) {
                    (Some(a), Some(b)) => format!("positions {a}..={b}"),
                    _ => "nothing matched".to_owned(),
                };
                eprintln!(
                    "exported {} events ({range}; {} sealed) in {:.2} s",
                    summary.events,
                    summary.sealed,
                    started.elapsed().as_secs_f64()
                );
                if let Some(checkpoint) = &summary.checkpoint {
                    eprintln!(
                        "ends with the signed checkpoint of seal {} (position {})",
                        checkpoint.seq, checkpoint.position
                    );
                }
                anyhow::Ok(())
            }
            .await;
            db.close().await?;
            result
        }
        EventsCommand::Replay { database, request, json } => {
            let db = Database::open(&database).await?;
            let steps = event_export::replay(&db.pool, request).await;
            db.close().await?;
            let steps = steps?;
            if steps.is_empty() {
                anyhow::bail!("no events for permission request {request}");
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&steps)?);
            } else {
                print!("{}", event_export::render_replay(request, &steps));
            }
            Ok(())
        }
        EventsCommand::Skip { database, position, reason } => {
            let db = Database::open(&database).await?;
            let skipped = async {
                crate::db::migrate(&db.pool).await?;
                let actor = Actor::System("cli");
                anyhow::Ok(event_skip::skip_unreadable_event(&db.pool, position, &reason, &actor, "cli").await?)
            }
            .await;
            db.close().await?;
            let skipped = skipped?;
            println!(
                "skipped event {} ({} {} #{}, {}), which cannot be read: {}",
                skipped.position,
                skipped.aggregate_type,
                skipped.aggregate_id,
                skipped.sequence,
                skipped.event_type,
                skipped.unreadable
            );
            println!(
                "recorded as event {} by {}; projections and the request now read the log without it",
                skipped.recorded_at_position,
                Actor::System("cli")
            );
            Ok(())
        }
    }
}

/// The checkpoint `--checkpoint` names: `latest` or a seal number of the events chain.
async fn chosen_checkpoint(pool: &sqlx::PgPool, choice: &str) -> anyhow::Result<crate::audit::Checkpoint> {
    use crate::audit::{checkpoints, EVENTS_CHAIN};
    let found = if choice == "latest" {
        checkpoints::latest(pool, EVENTS_CHAIN).await?
    } else {
        let seq: i64 = choice.parse().map_err(|_| anyhow::anyhow!("--checkpoint is `latest` or a seal number"))?;
        checkpoints::list(pool, EVENTS_CHAIN, seq - 1, 1).await?.into_iter().find(|c| c.seq == seq)
    };
    found.ok_or_else(|| {
        anyhow::anyhow!("no signed checkpoint {choice} (the sealer signs one every N events or M seconds)")
    })
}
