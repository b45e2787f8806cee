//! The `mcp_servers` table: the one source of truth for which upstreams exist.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{FromRow, PgConnection, PgPool};

use super::config::{TransportKind, UpstreamConfig};

/// A stored configuration and when it was written.
#[derive(Debug, Clone)]
pub struct StoredServer {
    pub config: UpstreamConfig,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(FromRow)]
struct Row {
    name: String,
    transport: String,
    command: Option<String>,
    args: Vec<String>,
    env: Json<BTreeMap<String, String>>,
    cwd: Option<String>,
    run_as: Option<String>,
    url: Option<String>,
    headers: Json<BTreeMap<String, String>>,
    tool_prefix: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A row that cannot be turned into a configuration (written by hand, or by a newer
/// version). It is reported, not fatal: the other servers still load.
#[derive(Debug, Clone)]
pub struct UnreadableRow {
    pub name: String,
    pub problem: String,
}

const COLUMNS: &str =
    "name, transport, command, args, env, cwd, run_as, url, headers, tool_prefix, created_at, updated_at";

fn decode(row: Row) -> Result<StoredServer, UnreadableRow> {
    let Some(transport) = TransportKind::parse(&row.transport) else {
        return Err(UnreadableRow { problem: format!("unknown transport {:?}", row.transport), name: row.name });
    };
    Ok(StoredServer {
        config: UpstreamConfig {
            name: row.name,
            transport,
            command: row.command,
            args: row.args,
            env: row.env.0,
            cwd: row.cwd,
            run_as: row.run_as,
            url: row.url,
            headers: row.headers.0,
            tool_prefix: row.tool_prefix,
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Every stored server, oldest first (the order that settles tool-name clashes).
pub async fn load_all(pool: &PgPool) -> Result<Vec<Result<StoredServer, UnreadableRow>>, sqlx::Error> {
    let rows: Vec<Row> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM mcp_servers ORDER BY created_at, name")).fetch_all(pool).await?;
    Ok(rows.into_iter().map(decode).collect())
}

pub async fn exists(pool: &PgPool, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM mcp_servers WHERE name = $1)").bind(name).fetch_one(pool).await
}

/// Inserts the configuration; `None` when a server of that name already exists.
pub async fn insert(conn: &mut PgConnection, config: &UpstreamConfig) -> Result<Option<StoredServer>, sqlx::Error> {
    let row: Option<Row> = sqlx::query_as(&format!(
        "INSERT INTO mcp_servers (name, transport, command, args, env, cwd, run_as, url, headers, tool_prefix)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (name) DO NOTHING
         RETURNING {COLUMNS}"
    ))
    .bind(&config.name)
    .bind(config.transport.as_str())
    .bind(&config.command)
    .bind(&config.args)
    .bind(Json(&config.env))
    .bind(&config.cwd)
    .bind(&config.run_as)
    .bind(&config.url)
    .bind(Json(&config.headers))
    .bind(&config.tool_prefix)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|row| decode(row).unwrap_or_else(|_| unreachable_decode(config))))
}

// The row was just written from a valid configuration, so it always decodes; keep the
// configuration we wrote rather than panic if it somehow did not.
fn unreachable_decode(config: &UpstreamConfig) -> StoredServer {
    let now = Utc::now();
    StoredServer { config: config.clone(), created_at: now, updated_at: now }
}

/// Deletes the server; false when there was none.
pub async fn delete(conn: &mut PgConnection, name: &str) -> Result<bool, sqlx::Error> {
    let deleted = sqlx::query("DELETE FROM mcp_servers WHERE name = $1").bind(name).execute(&mut *conn).await?;
    Ok(deleted.rows_affected() > 0)
}
