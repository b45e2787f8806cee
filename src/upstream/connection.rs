//! One MCP client session with one upstream server, over rmcp: spawning the stdio child or
//! opening the Streamable HTTP transport, the handshake, and the first `tools/list`.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt as _;
use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::ResourceUpdatedNotificationParam;
#[allow(deprecated)] // LoggingMessageNotificationParam: see on_logging_message
use rmcp::model::{
    ClientConfig, ClientRequest, Implementation, LoggingMessageNotificationParam, PingRequest,
    ProgressNotificationParam, Tool,
};
#[allow(deprecated)] // sampling: deprecated at 2026-07-28, still asked by earlier servers
use rmcp::model::{CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams, ElicitResult, ErrorData};
use rmcp::service::{ClientCacheConfig, NotificationContext, RunningService};
use rmcp::service::{InboundStreamOrigin, RequestContext};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, Peer, RoleClient, ServiceExt as _};
use serde_json::Value;
use tokio::process::ChildStderr;
use tokio::sync::Notify;
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::sync::CancellationToken;

use super::config::{TransportKind, UpstreamConfig};
use super::relay::Relays;
use crate::approval::relay_record::{NoAnswer, RelayOutcome, RelayedRequest};
use crate::approval::AskError;

/// The only variables a stdio child inherits from the gateway's environment; the
/// configured `env` comes on top. Everything else stays out on purpose: the gateway's
/// own environment holds `DATABASE_URL`, `ALEXANDRIA_JWT_SECRET` and the admin password,
/// which an upstream server must never see.
pub const BASE_ENV: &[&str] = &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"];

/// Longest stderr line logged whole; longer ones are cut, so a chatty child cannot make the
/// gateway buffer without bound.
const MAX_STDERR_LINE: usize = 8192;

/// Longest wait for a session to close (rmcp gives a stdio child 3 s after closing its
/// stdin, then 3 s after SIGTERM, then kills it).
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// The rmcp client side of a session. Its jobs beyond the defaults: pass
/// `notifications/tools/list_changed` on to the server's supervisor, which re-lists tools,
/// and progress and log messages to the relayed calls in flight (`relay.rs`).
pub struct GatewayClient {
    server: String,
    tools_changed: Arc<Notify>,
    relays: Arc<Relays>,
}

/// Longest wait for a client's answer to a relayed request.
const CLIENT_ANSWER_TIMEOUT: Duration = Duration::from_secs(120);

impl GatewayClient {
    /// Relays a request the server sent during one of our calls to that call's client,
    /// and its answer back. No relayed call (an approved gated call runs without a client
    /// stream, or the client does not read one): a clear error the server's tool decides
    /// what to make of. Either way the request is recorded with its call
    /// (`approval::relay_record`): which server asked what, and how it ended; the answer
    /// is the client's business.
    async fn ask_client(
        &self,
        method: &str,
        params: Value,
        context: &RequestContext<RoleClient>,
    ) -> Result<Value, ErrorData> {
        let scope = match context.extensions.get::<InboundStreamOrigin>() {
            Some(InboundStreamOrigin::OutboundRequest(call)) => self.relays.for_request(call),
            _ => None,
        }
        .unwrap_or_default();
        let asked_at = Utc::now();
        let (answer, outcome) = match &scope.relay {
            None => {
                tracing::info!(server = %self.server, method, "an upstream asked a client, but no client stream is open for its call");
                let error = ErrorData::internal_error(
                    format!(
                        "the gateway cannot relay {method}: this call has no client to ask (a call run after a \
                         person's approval, or a client that does not read a text/event-stream answer)"
                    ),
                    None,
                );
                (Err(error), RelayOutcome::NoAnswer { reason: NoAnswer::NoClientStream })
            }
            Some(relay) => {
                tracing::info!(server = %self.server, agent = %relay.agent, method, "an upstream asked the client during a call");
                match relay.ask(method, params.clone(), CLIENT_ANSWER_TIMEOUT).await {
                    Ok(result) => (Ok(result), RelayOutcome::Answered),
                    Err(AskError::NoAnswer(reason)) => {
                        let message = format!("the client gave no answer: {}", reason.describe());
                        (Err(ErrorData::internal_error(message, None)), RelayOutcome::NoAnswer { reason })
                    }
                    Err(AskError::Refused(error)) => {
                        let code = error.get("code").and_then(Value::as_i64);
                        let refused = serde_json::from_value(error.clone()).unwrap_or_else(|_| {
                            ErrorData::internal_error("the client refused the request", Some(error))
                        });
                        (Err(refused), RelayOutcome::Refused { code })
                    }
                }
            }
        };
        match scope.record {
            Some((origin, recorder)) => {
                let record = RelayedRequest {
                    server: self.server.clone(),
                    agent: origin.agent.clone(),
                    tool: origin.tool.clone(),
                    call_id: origin.call_id,
                    permission_request_id: origin.permission_request,
                    method: method.to_owned(),
                    params,
                    asked_at,
                    ended_at: Utc::now(),
                    outcome,
                };
                recorder.record(&origin, record);
            }
            None => {
                tracing::warn!(server = %self.server, method, "a request an upstream asked outside any known call is not recorded")
            }
        }
        answer
    }
}

// Sampling and logging are deprecated at 2026-07-28; servers of earlier revisions use them.
#[allow(deprecated)]
impl ClientHandler for GatewayClient {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed.notify_one();
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, ErrorData> {
        let params = serde_json::to_value(params).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let result = self.ask_client("sampling/createMessage", params, &context).await?;
        serde_json::from_value(result)
            .map_err(|e| ErrorData::internal_error(format!("the client's answer is not a sampling result: {e}"), None))
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, ErrorData> {
        let params = serde_json::to_value(params).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        let result = self.ask_client("elicitation/create", params, &context).await?;
        serde_json::from_value(result).map_err(|e| {
            ErrorData::internal_error(format!("the client's answer is not an elicitation result: {e}"), None)
        })
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.relays.announce("notifications/resources/updated", Some(serde_json::json!({"uri": params.uri})));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.relays.announce("notifications/resources/list_changed", None);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.relays.announce("notifications/prompts/list_changed", None);
    }

    async fn on_progress(&self, params: ProgressNotificationParam, _context: NotificationContext<RoleClient>) {
        self.relays.progress(params);
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.relays.log(params);
    }

    fn get_info(&self) -> ClientConfig {
        // Sampling and elicitation are relayed to the client of the call that asks.
        let capabilities = serde_json::from_value(serde_json::json!({"sampling": {}, "elicitation": {"form": {}}}))
            .unwrap_or_default();
        ClientConfig::new(capabilities, Implementation::new("alexandria", env!("CARGO_PKG_VERSION")))
    }
}

/// A live session and the tools the server listed when it started.
pub struct Session {
    pub running: RunningService<RoleClient, GatewayClient>,
    pub peer: Peer<RoleClient>,
    /// Cancelling it ends the session: rmcp closes the transport, which for stdio closes
    /// the child's stdin, then sends SIGTERM, then kills it.
    pub cancel: CancellationToken,
    pub tools: Vec<Tool>,
}

/// Connects, handshakes and lists tools, all within `timeout`. The error is a message for
/// the server's status (`last_error`).
pub async fn connect(
    config: &UpstreamConfig,
    tools_changed: Arc<Notify>,
    relays: Arc<Relays>,
    cancel: CancellationToken,
    timeout: Duration,
) -> Result<Session, String> {
    let attempt = async {
        let client = GatewayClient { server: config.name.clone(), tools_changed, relays };
        let running = match config.transport {
            TransportKind::Stdio => {
                let (transport, stderr) = spawn_stdio(config)?;
                if let Some(stderr) = stderr {
                    tokio::spawn(log_stderr(config.name.clone(), stderr));
                }
                client
                    .serve_with_ct(transport, cancel.clone())
                    .await
                    .map_err(|e| format!("MCP handshake failed: {}", error_chain(&e)))?
            }
            TransportKind::StreamableHttp => {
                let transport = http_transport(config)?;
                client
                    .serve_with_ct(transport, cancel.clone())
                    .await
                    .map_err(|e| format!("MCP handshake failed: {}", error_chain(&e)))?
            }
        };
        let peer = running.peer().clone();
        // rmcp 3 caches list responses per client and serves a stale copy when a
        // re-fetch fails; the registry keeps its own catalog and must see real failures.
        peer.set_response_cache_config(ClientCacheConfig::disabled()).await;
        let tools = peer.list_all_tools().await.map_err(|e| format!("tools/list failed: {}", error_chain(&e)))?;
        Ok::<_, String>(Session { running, peer, cancel: cancel.clone(), tools })
    };
    let result = match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(format!("no MCP handshake and tools/list within {} s", timeout.as_secs_f64())),
    };
    if result.is_err() {
        // Ends whatever was started; a dropped stdio transport also kills its child.
        cancel.cancel();
    }
    result
}

fn spawn_stdio(config: &UpstreamConfig) -> Result<(TokioChildProcess, Option<ChildStderr>), String> {
    let program = config.command.as_deref().ok_or("no command configured")?;
    let mut command = tokio::process::Command::new(program);
    command.args(&config.args).env_clear();
    for name in BASE_ENV {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    if let Some(user) = &config.run_as {
        // Looked up at every start: the account may have changed, and this replica may
        // lack the privilege the registering one had.
        let account = super::run_as::resolve(user)?;
        super::run_as::apply(&mut command, &account);
    }
    command.envs(&config.env);
    // Never the gateway's own working directory, which may be its data directory (with
    // `admin-password` in it): the configured one, else the root.
    command.current_dir(config.cwd.as_deref().unwrap_or("/"));
    let mut wrapped = CommandWrap::from(command);
    // Own process group: a terminal's Ctrl-C reaches the gateway only, which then stops
    // its children in order; a kill reaches grandchildren too.
    wrapped.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    TokioChildProcess::builder(wrapped)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))
}

/// Copies the child's stderr into the log at debug level, line by line, until it closes.
async fn log_stderr(server: String, stderr: ChildStderr) {
    let mut lines = FramedRead::new(stderr, LinesCodec::new_with_max_length(MAX_STDERR_LINE));
    while let Some(line) = lines.next().await {
        match line {
            Ok(line) => tracing::debug!(server = %server, "upstream stderr: {line}"),
            Err(tokio_util::codec::LinesCodecError::MaxLineLengthExceeded) => {
                tracing::debug!(server = %server, "upstream stderr: (a line longer than {MAX_STDERR_LINE} bytes, skipped)")
            }
            Err(tokio_util::codec::LinesCodecError::Io(_)) => break,
        }
    }
}

fn http_transport(config: &UpstreamConfig) -> Result<StreamableHttpClientTransport<reqwest::Client>, String> {
    let url = config.url.as_deref().ok_or("no url configured")?;
    let mut headers = HashMap::with_capacity(config.headers.len());
    for (name, value) in &config.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name {name:?}"))?;
        let mut value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header {name:?}"))?;
        // Keeps the value out of any Debug output (http's own redaction).
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    // rmcp sends `custom_headers` on every POST, GET and DELETE of the session.
    // `reinit_on_expired_session` is off: on a 404 rmcp would open a new session and send
    // the in-flight request again, and a `tools/call` the server ran before losing the
    // session would run twice. The call fails instead, and the supervisor reconnects.
    let transport_config =
        StreamableHttpClientTransportConfig::with_uri(url).custom_headers(headers).reinit_on_expired_session(false);
    // Our own client, pooled: rmcp's default opens a connection per message (`http_client.rs`).
    Ok(StreamableHttpClientTransport::with_client(super::http_client::pooled()?, transport_config))
}

/// Asks the server for a ping: the liveness check of an idle or suspect session.
pub async fn ping(peer: &Peer<RoleClient>, timeout: Duration) -> Result<(), String> {
    let request =
        ClientRequest::PingRequest(PingRequest { method: Default::default(), extensions: Default::default() });
    match tokio::time::timeout(timeout, peer.send_request(request)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("ping failed: {}", error_chain(&e))),
        Err(_) => Err(format!("no answer to a ping within {} s", timeout.as_secs_f64())),
    }
}

/// Lists the server's tools, bounded by `timeout`.
pub async fn list_tools(peer: &Peer<RoleClient>, timeout: Duration) -> Result<Vec<Tool>, String> {
    match tokio::time::timeout(timeout, peer.list_all_tools()).await {
        Ok(Ok(tools)) => Ok(tools),
        Ok(Err(e)) => Err(format!("tools/list failed: {}", error_chain(&e))),
        Err(_) => Err(format!("no answer to tools/list within {} s", timeout.as_secs_f64())),
    }
}

/// An error and its sources on one line ("a: b: c"), skipping a source whose text the
/// outer message already contains.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}
