//! The auditors' page (role `auditor` or `super_admin`, the API's audit readers): where
//! each sealed chain stands, its latest signed checkpoint, and the evidence to take away
//! and check offline with `alexandria events verify` — the event log and the admin audit
//! trail as sealed JSON lines, and the checkpoint — so that the check does not rest on
//! trusting this server. The downloads are the API's streams (`routes::audit_log`).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::pages::{error_page, failure, render};
use super::session::ConsoleUser;
use super::view::{Chrome, Section};
use crate::audit::export::StreamedChain;
use crate::audit::sealer::chain_head;
use crate::audit::{checkpoints, Checkpoint, ADMIN_AUDIT_CHAIN, EVENTS_CHAIN};
use crate::auth::{AuthError, AuthenticatedUser, Principal};
use crate::http::routes::audit_log::stream_chain;
use crate::http::AppState;

#[derive(Template)]
#[template(path = "console/audit_log.html")]
pub struct AuditLogPage {
    pub chrome: Chrome,
    pub chains: Vec<ChainView>,
}

/// One chain as the page shows it.
pub struct ChainView {
    /// `events` or `admin_audit`: the name `events verify` reports it by.
    pub name: &'static str,
    pub title: &'static str,
    /// The file the log downloads as.
    pub log_file: &'static str,
    /// Seals so far and the last sealed line; `None`: nothing sealed yet.
    pub head: Option<(i64, i64, String)>,
    pub checkpoint: Option<Checkpoint>,
}

impl ChainView {
    /// The file the latest checkpoint downloads as.
    pub fn checkpoint_file(&self) -> String {
        format!("checkpoint-{}.json", self.name)
    }
}

/// The chains, in the order the page shows them.
const CHAINS: [(&str, &str, &str); 2] =
    [(EVENTS_CHAIN, "Event log", "events.jsonl"), (ADMIN_AUDIT_CHAIN, "Admin audit trail", "admin-audit.jsonl")];

fn audit_reader(user: &ConsoleUser) -> Result<AuthenticatedUser, AuthError> {
    Principal::User(user.0.clone()).audit_reader()
}

pub async fn page(user: ConsoleUser, State(state): State<AppState>) -> Response {
    let user = match audit_reader(&user) {
        Ok(user) => user,
        Err(refused) => return failure(refused),
    };
    let mut chains = Vec::with_capacity(CHAINS.len());
    for (name, title, log_file) in CHAINS {
        let head = match chain_head(&state.pool, name).await {
            Ok(head) => head.map(|head| (head.seq, head.position, hex::encode(head.hash))),
            Err(error) => return failure(error),
        };
        let checkpoint = match checkpoints::latest(&state.pool, name).await {
            Ok(checkpoint) => checkpoint,
            Err(error) => return failure(error),
        };
        chains.push(ChainView { name, title, log_file, head, checkpoint });
    }
    render(StatusCode::OK, &AuditLogPage { chrome: Chrome::new(&user, Section::AuditLog), chains })
}

/// `GET /audit-log/{file}`: a chain's sealed JSON lines (`events.jsonl`,
/// `admin-audit.jsonl`) or its latest signed checkpoint (`checkpoint-<chain>.json`), as a
/// download.
pub async fn download(user: ConsoleUser, State(state): State<AppState>, Path(file): Path<String>) -> Response {
    if let Err(refused) = audit_reader(&user) {
        return failure(refused);
    }
    let response = match file.as_str() {
        "events.jsonl" => stream_chain(&state, StreamedChain::Events, None).await,
        "admin-audit.jsonl" => stream_chain(&state, StreamedChain::AdminAudit, None).await,
        "checkpoint-events.json" | "checkpoint-admin_audit.json" => {
            let chain = if file == "checkpoint-events.json" { EVENTS_CHAIN } else { ADMIN_AUDIT_CHAIN };
            match checkpoints::latest(&state.pool, chain).await {
                Ok(Some(checkpoint)) => Ok(axum::Json(checkpoint).into_response()),
                Ok(None) => {
                    return error_page(StatusCode::NOT_FOUND, "That chain has no signed checkpoint yet.");
                }
                Err(error) => return failure(error),
            }
        }
        _ => return error_page(StatusCode::NOT_FOUND, "There is no such file. Open the audit log from the menu."),
    };
    match response {
        Ok(mut response) => {
            // `file` is one of the names matched above: a valid header value.
            if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
                response.headers_mut().insert(header::CONTENT_DISPOSITION, disposition);
            }
            response
        }
        Err(error) => failure(error),
    }
}
