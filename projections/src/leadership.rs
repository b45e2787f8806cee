//! One worker across replicas: a session-level advisory lock held on a connection of its
//! own (outside the pool, so leadership never costs the request path a connection). The
//! lock lives exactly as long as that session: if the leader dies or its connection
//! drops, PostgreSQL releases it and a stand-by takes over.
//!
//! [`Leadership::run_while_leading`] is the one leader/stand-by loop: every single-leader
//! worker (each projection runner, the notification reconciler) is that loop around its
//! own `lead` function.

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

pub struct Leadership {
    conn: PgConnection,
}

impl Leadership {
    /// Takes the lock named `key` if nobody holds it; `None` when another session does.
    pub async fn try_acquire(pool: &PgPool, key: &str) -> Result<Option<Leadership>, sqlx::Error> {
        let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(key)
            .fetch_one(&mut conn)
            .await?;
        if got {
            Ok(Some(Leadership { conn }))
        } else {
            conn.close().await.ok();
            Ok(None)
        }
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
                Ok(None) => tracing::debug!(worker = key, "another process leads; standing by"),
                Err(error) => tracing::warn!(worker = key, %error, "cannot take the lead"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(standby) => {}
            }
        }
    }

    /// False once the lock's connection is gone (and the lock with it).
    pub async fn is_held(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut self.conn).await.is_ok()
    }

    /// Gives the lock up now rather than when the process exits.
    pub async fn release(self) {
        self.conn.close().await.ok();
    }
}
