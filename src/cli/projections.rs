use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use super::Database;
use crate::cli::args::DatabaseArgs;

#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Position, lag and last error of every projection, and the event it is stuck on if
    /// it cannot read one.
    Status {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild read models from event 0 into shadow tables and swap them in atomically;
    /// safe while `serve` is running.
    Rebuild {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The projection to rebuild; all when omitted.
        name: Option<String>,
    },
}

struct BarProgress(ProgressBar);

impl alexandria_projections::RebuildProgress for BarProgress {
    fn started(&mut self, total_events: u64) {
        self.0.set_length(total_events);
    }
    fn advanced(&mut self, applied_events: u64) {
        if applied_events > self.0.length().unwrap_or(0) {
            self.0.set_length(applied_events);
        }
        self.0.set_position(applied_events);
    }
}

pub async fn run(command: ProjectionsCommand) -> anyhow::Result<()> {
    match command {
        ProjectionsCommand::Status { database, json } => {
            let db = Database::open(&database).await?;
            let statuses = alexandria_projections::projection_status(&db.pool, crate::notify::CHECKPOINTS_LED_BY).await;
            db.close().await?;
            let statuses = statuses?;
            if json {
                println!("{}", serde_json::to_string_pretty(&statuses)?);
            } else {
                println!(
                    "{:<24} {:>12} {:>10}  {:<25}  {:<24}  {:>10}  LAST ERROR",
                    "PROJECTION", "POSITION", "LAG", "UPDATED", "LEADER", "STUCK AT"
                );
                let mut stuck = Vec::new();
                for s in statuses {
                    let leader = s.leader.map_or_else(
                        || "-".to_owned(),
                        |l| format!("pid {} {}", l.pid, l.client_address.as_deref().unwrap_or("")),
                    );
                    println!(
                        "{:<24} {:>12} {:>10}  {:<25}  {:<24}  {:>10}  {}",
                        s.name,
                        s.position,
                        s.lag,
                        s.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                        leader.trim_end(),
                        s.unreadable_position.map_or_else(|| "-".to_owned(), |position| position.to_string()),
                        s.last_error.as_deref().unwrap_or("-")
                    );
                    if let Some(position) = s.unreadable_position {
                        stuck.push((s.name, position));
                    }
                }
                for (name, position) in stuck {
                    println!(
                        "\n{name} is stuck at event {position}, which cannot be read. Once you have looked at \
                         the row, read past it with:\n  alexandria events skip {position} --reason \"...\""
                    );
                }
            }
            Ok(())
        }
        ProjectionsCommand::Rebuild { database, name } => {
            let projections = match name {
                Some(name) => vec![alexandria_projections::by_name(&name).ok_or_else(|| {
                    let known: Vec<_> = alexandria_projections::all().iter().map(|p| p.name()).collect();
                    anyhow::anyhow!("no projection named {name:?}; known: {}", known.join(", "))
                })?],
                None => alexandria_projections::all(),
            };
            let db = Database::open(&database).await?;
            crate::db::migrate(&db.pool).await?;
            let mut result = Ok(());
            for projection in projections {
                let bar = ProgressBar::new(0).with_style(
                    ProgressStyle::with_template("{msg:24} [{bar:40}] {pos}/{len} events ({per_sec}, eta {eta})")
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_message(projection.name());
                let mut progress = BarProgress(bar.clone());
                match alexandria_projections::rebuild(&db.pool, projection.as_ref(), &mut progress).await {
                    Ok(summary) => {
                        bar.finish_and_clear();
                        eprintln!(
                            "rebuilt {}: {} events -> {} rows in {:.2} s ({:.0} events/s), now at position {}",
                            summary.projection,
                            summary.events,
                            summary.rows,
                            summary.elapsed.as_secs_f64(),
                            summary.events_per_second(),
                            summary.position
                        );
                    }
                    Err(error) => {
                        bar.abandon();
                        result = Err(error.context(format!("rebuilding {} failed", projection.name())));
                        break;
                    }
                }
            }
            db.close().await?;
            result
        }
    }
}
