//! One worker across replicas: a session-level advisory lock held on a connection of its
//! own (outside the pool, so leadership never costs the request path a connection). The
//! lock lives exactly as long as that session: if the leader dies or its connection
//! drops, PostgreSQL releases it and a stand-by takes over.

use sqlx::{Connection, PgConnection, PgPool};

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

    /// False once the lock's connection is gone (and the lock with it).
    pub async fn is_held(&mut self) -> bool {
        sqlx::query("SELECT 1").execute(&mut self.conn).await.is_ok()
    }

    /// Gives the lock up now rather than when the process exits.
    pub async fn release(self) {
        self.conn.close().await.ok();
    }
}
