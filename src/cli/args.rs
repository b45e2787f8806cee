//! Configuration. Every setting is a flag and an environment variable (the names are a
//! contract, see README): clap reads both, flags win.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use crate::auth::throttle::LoginThrottlePolicy;
use crate::notify::ReconcilerOptions;
use crate::startup::Settings;

/// Where the database is: an explicit URL, or the managed local PostgreSQL.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Unset: run a private PostgreSQL from this machine's binaries, with
    /// its data in `$ALEXANDRIA_DATA_DIR/pg`.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for Alexandria's local state (managed database, generated secrets).
    #[arg(long, env = "ALEXANDRIA_DATA_DIR", default_value = "./alexandria-data")]
    pub data_dir: PathBuf,

    /// Most database connections the process opens (`serve`: pool plus the background
    /// workers' leadership-lock connections).
    #[arg(long, env = "ALEXANDRIA_DB_POOL_SIZE", default_value_t = crate::db::DEFAULT_POOL_SIZE)]
    pub db_pool_size: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,

    /// Address to listen on.
    #[arg(long, env = "ALEXANDRIA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this address only (unauthenticated: keep it internal).
    /// Unset: `/metrics` is served on the main address.
    #[arg(long, env = "ALEXANDRIA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Base URL used in links sent out (notifications). Default: http://<listen>.
    #[arg(long, env = "ALEXANDRIA_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Password of the bootstrap `admin` user. Unset on first start: generated and
    /// written to `$ALEXANDRIA_DATA_DIR/admin-password`.
    #[arg(long, env = "ALEXANDRIA_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// HS256 secret for every JWT (at least 32 bytes). Unset: generated once and stored in
    /// the database so every replica shares it.
    #[arg(long, env = "ALEXANDRIA_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// How long a gated call waits in-band for a decision before answering "pending".
    #[arg(long, env = "ALEXANDRIA_APPROVAL_WAIT_SECS", default_value_t = 30)]
    pub approval_wait_secs: u64,

    /// How long a permission request stays open before it expires.
    #[arg(long, env = "ALEXANDRIA_APPROVAL_TTL_SECS", default_value_t = 86_400)]
    pub approval_ttl_secs: u64,

    /// Longest wait for one upstream MCP `tools/call` answer.
    #[arg(long, env = "ALEXANDRIA_UPSTREAM_CALL_TIMEOUT_SECS", default_value_t = 60)]
    pub upstream_call_timeout_secs: u64,

    /// Register the example filesystem MCP server and create `demo-agent` (allowed: its
    /// four tools; approval required: write_file) if they do not exist.
    #[arg(long, env = "ALEXANDRIA_DEMO")]
    pub demo: bool,

    /// Apply database migrations on start (`true`), or leave them to `alexandria migrate`
    /// (`false`, e.g. a Kubernetes migration Job): a database older than the binary is then
    /// waited for, `/readyz` answering 503 with the missing migrations, never served.
    #[arg(long, env = "ALEXANDRIA_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub migrate_on_start: bool,

    /// This process's name in event metadata. Default: hostname-pid.
    #[arg(long, env = "ALEXANDRIA_REPLICA_ID")]
    pub replica_id: Option<String>,

    #[command(flatten)]
    pub audit_key: crate::cli::verify::AuditKeyArgs,

    /// The sealer signs a checkpoint after this many new seals of a chain...
    #[arg(long, env = "ALEXANDRIA_AUDIT_CHECKPOINT_EVERY", default_value_t = 1000,
          value_parser = clap::value_parser!(i64).range(1..))]
    pub audit_checkpoint_every: i64,

    /// ...or this many seconds after its last one, if anything new was sealed.
    #[arg(long, env = "ALEXANDRIA_AUDIT_CHECKPOINT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub audit_checkpoint_secs: u64,

    /// Also send each signed checkpoint to the notification webhook (when one is
    /// configured), as event `audit.checkpoint`.
    #[arg(long, env = "ALEXANDRIA_AUDIT_CHECKPOINT_WEBHOOK")]
    pub audit_checkpoint_webhook: bool,
}

impl ServeArgs {
    /// The server's settings from these arguments.
    pub fn settings(&self) -> Settings {
        Settings {
            listen: self.listen,
            metrics_listen: self.metrics_listen,
            public_url: self.public_url(),
            approval_wait: Duration::from_secs(self.approval_wait_secs),
            approval_ttl: Duration::from_secs(self.approval_ttl_secs),
            replica_id: self.replica_id.clone().unwrap_or_else(default_replica_id),
            upstream_call_timeout: Duration::from_secs(self.upstream_call_timeout_secs),
            data_dir: self.database.data_dir.clone(),
            admin_password: self.admin_password.clone().map(SecretString::from),
            jwt_secret: self.jwt_secret.clone().map(SecretString::from),
            login_throttle: LoginThrottlePolicy::default(),
            notifier: ReconcilerOptions::default(),
            audit_key_file: self.audit_key.path(&self.database.data_dir),
            sealer: crate::audit::SealerSettings {
                checkpoint_every_seals: self.audit_checkpoint_every,
                checkpoint_every: Duration::from_secs(self.audit_checkpoint_secs),
                push_to_webhook: self.audit_checkpoint_webhook,
                ..crate::audit::SealerSettings::default()
            },
        }
    }

    pub fn public_url(&self) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

/// A name for this process that is unique across replicas and restarts.
pub fn default_replica_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "alexandria".to_owned());
    format!("{host}-{}", std::process::id())
}
