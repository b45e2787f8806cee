//! One worker across replicas: a session-level advisory lock held on a connection of its
//! own (outside the pool, so leadership never costs the request path a connection). The
//! lock lives exactly as long as that session: if the leader dies or its connection
//! drops, PostgreSQL releases it and a stand-by takes over.
//!
//! [`Leadership::run_while_leading`] is the one leader/stand-by loop: every single-leader
//! worker (each projection runner, the notification reconciler) is that loop around its
//! own `lead` function.
//!
//! A leader that stops without its connection dropping (SIGSTOP, a frozen VM; or a host
//! that lost power, until TCP gives up) would hold the lock for good. So the leader beats
//! a heartbeat (`leader_heartbeats`) from its lock session each time its worker checks
//! [`Leadership::is_held`], which every worker does at least once a second; a stand-by
//! that finds the holder silent for [`STALE_AFTER`] ends the holder's session
//! (`pg_terminate_backend`), which releases the lock, and takes over. The old leader, if
//! it ever runs again, finds its session gone at its next check and stands down. The lock
//! session also asks the server for TCP keepalives, so a vanished host is noticed in
//! about 25 s rather than the OS default of two hours.

use std::future::Future;
use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// The PostgreSQL session that holds a leadership lock: the leading replica's lock
/// connection, as the server sees it.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct LockHolder {
    pub pid: i32,
    /// The replica's address (`None` over a Unix socket, or when the database role may
    /// not see other sessions' addresses).
    pub client_address: Option<String>,
    pub application_name: Option<String>,
    /// When its lock connection was opened: about when it began to lead.
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// Who holds the lock named `key`, if anyone does (read from `pg_locks`, so it is known
/// on every replica, not only the leader).
pub async fn holder(pool: &PgPool, key: &str) -> Result<Option<LockHolder>, sqlx::Error> {
    // A bigint advisory key shows in pg_locks as classid (high half) and objid (low half).
    sqlx::query_as(
        "SELECT a.pid, host(a.client_addr) AS client_address, NULLIF(a.application_name, '') AS application_name, \
                a.backend_start AS since \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0) \
         LIMIT 1",
    )
    .bind(key)
    .fetch_optional(pool)
    .await
}

/// A leader silent this long is stuck: a stand-by ends its session and takes over.
pub const STALE_AFTER: Duration = Duration::from_secs(20);
/// How often a leader writes its heartbeat (at most; [`Leadership::is_held`] writes it).
const BEAT_EVERY: Duration = Duration::from_secs(2);

pub struct Leadership {
    conn: PgConnection,
    key: String,
    last_beat: tokio::time::Instant,
}

impl Leadership {
    /// Takes the lock named `key` if nobody holds it; `None` when another session does.
    pub async fn try_acquire(pool: &PgPool, key: &str) -> Result<Option<Leadership>, sqlx::Error> {
        // The server probes this session every 5 s after 10 s of silence and drops it
        // after 3 unanswered probes (or 30 s of unacknowledged data), releasing the lock.
        let options = pool.connect_options().as_ref().clone().options([
            ("tcp_keepalives_idle", "10"),
            ("tcp_keepalives_interval", "5"),
            ("tcp_keepalives_count", "3"),
            ("tcp_user_timeout", "30000"),
        ]);
        let mut conn = PgConnection::connect_with(&options).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            conn.close().await.ok();
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO leader_heartbeats (key, pid, beat_at) VALUES ($1, pg_backend_pid(), now()) \
             ON CONFLICT (key) DO UPDATE SET pid = EXCLUDED.pid, beat_at = EXCLUDED.beat_at",
        )
        .bind(key)
        .execute(&mut conn)
        .await?;
        Ok(Some(Leadership { conn, key: key.to_owned(), last_beat: tokio::time::Instant::now() }))
    }

    /// Ends the session of a holder of lock `key` that has not beaten its heartbeat for
    /// [`STALE_AFTER`]: PostgreSQL then releases its lock. A holder with no heartbeat row
    /// (a replica of an older version) is left alone. Whether a session was ended.
    async fn end_stale_holder(pool: &PgPool, key: &str) -> Result<bool, sqlx::Error> {
        let Some(holder) = holder(pool, key).await? else { return Ok(false) };
        let stale: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM leader_heartbeats \
             WHERE key = $1 AND pid = $2 AND beat_at < now() - make_interval(secs => $3)",
        )
        .bind(key)
        .bind(holder.pid)
        .bind(STALE_AFTER.as_secs_f64())
        .fetch_optional(pool)
        .await?;
        let Some(pid) = stale else { return Ok(false) };
        tracing::warn!(worker = key, pid, "the leader missed its heartbeats; ending its session to take over");
        sqlx::query_scalar::<_, bool>("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(pool).await
    }

    /// Until `shutdown`: takes the lock named `key` whenever it is free and runs `lead`
    /// while holding it; stands by (retrying every `standby`) while another process
    /// leads. `lead` returns when it has lost the lock (see [`is_held`](Self::is_held)) or
    /// on shutdown; the lock is released after it returns.
    pub async fn run_while_leading<F, Fut>(
        pool: &PgPool,
        key: &str,
        standby: Duration,
        shutdown: &CancellationToken,
        mut lead: F,
    ) where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = Leadership>,
    {
        loop {
            let acquired = tokio::select! {
                _ = shutdown.cancelled() => return,
                acquired = Leadership::try_acquire(pool, key) => acquired,
            };
            match acquired {
                Ok(Some(leadership)) => {
                    tracing::info!(worker = key, "leading");
                    lead(leadership).await.release().await;
                    // Lost the lock or shutting down: either way, look again at once.
                    continue;
                }
                Ok(None) => {
                    tracing::debug!(worker = key, "another process leads; standing by");
                    match Leadership::end_stale_holder(pool, key).await {
                        // Its lock is released as its session ends: try again at once.
                        Ok(true) => continue,
                        Ok(false) => {}
                        Err(error) => tracing::warn!(worker = key, %error, "cannot check the leader's heartbeat"),
                    }
                }
                Err(error) => tracing::warn!(worker = key, %error, "cannot take the lead"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(standby) => {}
            }
        }
    }

    /// False once the lock's connection is gone (and the lock with it). Also the
    /// leader's heartbeat: workers call it at least once a second while they lead.
    pub async fn is_held(&mut self) -> bool {
        if self.last_beat.elapsed() < BEAT_EVERY {
            return sqlx::query("SELECT 1").execute(&mut self.conn).await.is_ok();
        }
        let beat =
            sqlx::query("UPDATE leader_heartbeats SET beat_at = now() WHERE key = $1 AND pid = pg_backend_pid()")
                .bind(&self.key)
                .execute(&mut self.conn)
                .await;
        match beat {
            Ok(done) if done.rows_affected() == 1 => {
                self.last_beat = tokio::time::Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Gives the lock up now rather than when the process exits.
    pub async fn release(self) {
        self.conn.close().await.ok();
    }
}
