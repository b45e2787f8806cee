//! JSON-RPC 2.0 framing: one posted message becomes a typed [`ClientMessage`], or the
//! error reply that says why it cannot be one. Responses are built by a [`Responder`],
//! which knows the request's id and protocol era.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// The runbook's contract: a rejected or expired request.
pub const ACCESS_DENIED: i64 = -32003;
/// An approved call whose execution started but whose result was never recorded.
pub const OUTCOME_UNKNOWN: i64 = -32004;
/// MCP (2025-06-18, 2025-11-25): a resource that does not exist.
pub const RESOURCE_NOT_FOUND: i64 = -32002;
/// 2026-07-28: `MCP-Protocol-Version` header and `_meta` disagree.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: unsupported protocol version.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// The protocol era of one request: 2026-07-28 requests carry their version in a
/// header (and `_meta`) and expect `resultType` on every result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Handshake,
    Modern,
}

/// A request id: a string or a number, never null or a structure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RequestId {
    Number(serde_json::Number),
    String(String),
}

/// One message a client posted.
#[derive(Debug)]
pub enum ClientMessage {
    Request(Request),
    /// A response to a request the gateway relayed to the client during a call
    /// (`sampling/createMessage`, `elicitation/create`): the whole message, `result` or
    /// `error` in it. Accepted, never answered.
    Answer {
        id: RequestId,
        response: Value,
    },
    /// A notification: accepted, never answered.
    NoAnswer,
}

/// A request, its method and parameters typed.
#[derive(Debug)]
pub struct Request {
    pub id: RequestId,
    pub method: Method,
    pub meta: RequestMeta,
}

/// What a request's `params._meta` says that the gateway acts on.
#[derive(Debug, Default, Clone)]
pub struct RequestMeta {
    /// `io.modelcontextprotocol/protocolVersion` (2026-07-28 requests).
    pub protocol_version: Option<String>,
    /// `progressToken`: the client wants `notifications/progress` for this request.
    pub progress_token: Option<ProgressToken>,
    /// The request's `io.modelcontextprotocol/clientCapabilities` declare the tasks
    /// extension (`io.modelcontextprotocol/tasks`, 2026-07-28).
    pub declares_tasks_extension: bool,
}

/// A progress token: a string or a number, as the client sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProgressToken {
    Number(serde_json::Number),
    String(String),
}

/// The extension identifier of MCP Tasks in 2026-07-28 capabilities.
pub const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

impl RequestMeta {
    /// Read leniently, field by field: a malformed field the gateway does not need must
    /// not cost the ones it does.
    fn from_value(meta: Option<Value>) -> Self {
        let Some(Value::Object(meta)) = meta else { return Self::default() };
        let protocol_version =
            meta.get("io.modelcontextprotocol/protocolVersion").and_then(Value::as_str).map(str::to_owned);
        let progress_token = meta.get("progressToken").and_then(|token| ProgressToken::deserialize(token).ok());
        let declares_tasks_extension = meta
            .get("io.modelcontextprotocol/clientCapabilities")
            .and_then(|capabilities| capabilities.get("extensions"))
            .and_then(|extensions| extensions.get(TASKS_EXTENSION))
            .is_some_and(Value::is_object);
        Self { protocol_version, progress_token, declares_tasks_extension }
    }
}

/// The methods the gateway answers; anything else is `Unsupported`.
#[derive(Debug)]
pub enum Method {
    Initialize(InitializeParams),
    Discover,
    Ping,
    ListTools,
    CallTool(CallToolParams),
    /// `tasks/get`, `tasks/result`, `tasks/cancel`, `tasks/update` (MCP Tasks).
    Task(TaskMethod, String),
    /// `tasks/list`, from the cursor a previous page returned.
    ListTasks {
        cursor: Option<String>,
    },
    /// Prompts, resources, completions and logging: routed upstream, their params as sent.
    Surface(SurfaceMethod, Map<String, Value>),
    Unsupported(String),
}

/// The methods of an upstream's surface beside tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SurfaceMethod {
    ListPrompts,
    GetPrompt,
    ListResources,
    ListResourceTemplates,
    ReadResource,
    Subscribe,
    Unsubscribe,
    Complete,
    SetLevel,
}

impl SurfaceMethod {
    fn parse(method: &str) -> Option<Self> {
        Some(match method {
            "prompts/list" => Self::ListPrompts,
            "prompts/get" => Self::GetPrompt,
            "resources/list" => Self::ListResources,
            "resources/templates/list" => Self::ListResourceTemplates,
            "resources/read" => Self::ReadResource,
            "resources/subscribe" => Self::Subscribe,
            "resources/unsubscribe" => Self::Unsubscribe,
            "completion/complete" => Self::Complete,
            "logging/setLevel" => Self::SetLevel,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::ListPrompts => "prompts/list",
            Self::GetPrompt => "prompts/get",
            Self::ListResources => "resources/list",
            Self::ListResourceTemplates => "resources/templates/list",
            Self::ReadResource => "resources/read",
            Self::Subscribe => "resources/subscribe",
            Self::Unsubscribe => "resources/unsubscribe",
            Self::Complete => "completion/complete",
            Self::SetLevel => "logging/setLevel",
        }
    }
}

/// The task methods that name one task by its `taskId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskMethod {
    Get,
    Result,
    Cancel,
    /// 2026-07-28: answers to a task's input requests (this gateway never asks any).
    Update,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub protocol_version: String,
}

#[derive(Debug)]
pub struct CallToolParams {
    pub name: String,
    /// `{}` when the client sent none (or `null`).
    pub arguments: Map<String, Value>,
    /// `params.task` (MCP 2025-11-25 experimental tasks): the client asks for a task.
    /// Its `ttl` is not kept: a task lives as long as its permission request.
    pub as_task: bool,
}

/// A message that is not one the endpoint can take: the error response to send, and
/// whether the whole HTTP request was malformed (400) or only the method's parameters
/// (a JSON-RPC error in a 200, as for any method that fails).
#[derive(Debug)]
pub struct Rejection {
    pub body: Value,
    pub malformed: bool,
}

impl Rejection {
    fn malformed(id: Option<RequestId>, code: i64, message: impl Into<String>) -> Self {
        Rejection { body: error_body(id.as_ref(), code, message, None), malformed: true }
    }
}

/// Parses one posted body.
pub fn parse(body: &[u8]) -> Result<ClientMessage, Rejection> {
    let message: Value = serde_json::from_slice(body)
        .map_err(|error| Rejection::malformed(None, PARSE_ERROR, format!("parse error: {error}")))?;
    let Value::Object(mut message) = message else {
        let what = if message.is_array() {
            "batches are not supported (removed in MCP 2025-06-18): send one JSON-RPC message per POST"
        } else {
            "a JSON-RPC message must be an object"
        };
        return Err(Rejection::malformed(None, INVALID_REQUEST, what));
    };
    // Matched by hand: the untagged enum's derived Deserialize builds (and drops) a
    // serde error for every string id before it tries the second variant.
    let id = match message.remove("id") {
        None => None,
        Some(Value::Number(id)) => Some(RequestId::Number(id)),
        Some(Value::String(id)) => Some(RequestId::String(id)),
        Some(_) => return Err(Rejection::malformed(None, INVALID_REQUEST, "id must be a string or a number")),
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Rejection::malformed(id, INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let method = match message.remove("method") {
        Some(Value::String(method)) => method,
        Some(_) => return Err(Rejection::malformed(id, INVALID_REQUEST, "method must be a string")),
        None if message.contains_key("result") || message.contains_key("error") => {
            return Ok(match id {
                Some(id) => ClientMessage::Answer { id, response: Value::Object(message) },
                None => ClientMessage::NoAnswer,
            })
        }
        None => return Err(Rejection::malformed(id, INVALID_REQUEST, "method is missing")),
    };
    let mut params = match message.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => {
            return Err(Rejection {
                body: error_body(id.as_ref(), INVALID_PARAMS, "params must be an object", None),
                malformed: false,
            })
        }
    };
    // Notifications (`notifications/initialized`, `notifications/cancelled`, ...) need
    // no answer.
    let Some(id) = id else { return Ok(ClientMessage::NoAnswer) };
    let meta = RequestMeta::from_value(params.remove("_meta"));
    if params.iter().any(|(key, value)| key.contains('\0') || crate::validation::contains_nul(value)) {
        return Err(Rejection {
            body: error_body(Some(&id), INVALID_PARAMS, format!("params: {}", crate::validation::NUL_REFUSED), None),
            malformed: false,
        });
    }
    let method = Method::parse(method, params).map_err(|message| Rejection {
        body: error_body(Some(&id), INVALID_PARAMS, message, None),
        malformed: false,
    })?;
    Ok(ClientMessage::Request(Request { id, method, meta }))
}

impl Method {
    fn parse(method: String, mut params: Map<String, Value>) -> Result<Method, String> {
        Ok(match method.as_str() {
            "initialize" => Method::Initialize(
                InitializeParams::deserialize(Value::Object(params))
                    .map_err(|_| "initialize needs params.protocolVersion".to_owned())?,
            ),
            "server/discover" => Method::Discover,
            "ping" => Method::Ping,
            "tools/list" => Method::ListTools,
            "tools/call" => {
                let name = match params.remove("name") {
                    Some(Value::String(name)) => name,
                    _ => return Err("tools/call needs params.name (a string)".to_owned()),
                };
                let arguments = match params.remove("arguments") {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(arguments)) => arguments,
                    Some(_) => return Err("params.arguments must be an object".to_owned()),
                };
                let as_task = match params.remove("task") {
                    None | Some(Value::Null) => false,
                    Some(Value::Object(_)) => true,
                    Some(_) => return Err("params.task must be an object".to_owned()),
                };
                Method::CallTool(CallToolParams { name, arguments, as_task })
            }
            "tasks/get" | "tasks/result" | "tasks/cancel" | "tasks/update" => {
                let which = match method.as_str() {
                    "tasks/get" => TaskMethod::Get,
                    "tasks/result" => TaskMethod::Result,
                    "tasks/cancel" => TaskMethod::Cancel,
                    _ => TaskMethod::Update,
                };
                match params.remove("taskId") {
                    Some(Value::String(task_id)) => Method::Task(which, task_id),
                    _ => return Err(format!("{method} needs params.taskId (a string)")),
                }
            }
            "tasks/list" => match params.remove("cursor") {
                None | Some(Value::Null) => Method::ListTasks { cursor: None },
                Some(Value::String(cursor)) => Method::ListTasks { cursor: Some(cursor) },
                Some(_) => return Err("params.cursor must be a string".to_owned()),
            },
            other => match SurfaceMethod::parse(other) {
                Some(surface) => Method::Surface(surface, params),
                None => Method::Unsupported(method),
            },
        })
    }
}

/// `{"jsonrpc": "2.0", "id", "error": {"code", "message", "data"?}}`; a null id when the
/// request's could not be read.
pub fn error_body(id: Option<&RequestId>, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message.into()});
    if let Some(data) = data {
        error["data"] = data;
    }
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

/// Builds the responses to one request. Small on purpose: a gated call holds it for as
/// long as it waits.
#[derive(Debug, Clone)]
pub struct Responder {
    pub id: RequestId,
    pub era: Era,
}

impl Responder {
    /// A result; 2026-07-28 requests expect `resultType` on every one.
    pub fn result(&self, mut result: Value) -> Value {
        if self.era == Era::Modern {
            if let Some(object) = result.as_object_mut() {
                object.entry("resultType").or_insert(json!("complete"));
            }
        }
        json!({"jsonrpc": "2.0", "id": self.id, "result": result})
    }

    pub fn error(&self, code: i64, message: impl Into<String>, data: Option<Value>) -> Value {
        error_body(Some(&self.id), code, message, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(body: &str) -> Rejection {
        match parse(body.as_bytes()) {
            Err(rejection) => rejection,
            Ok(message) => panic!("{body} parsed as {message:?}"),
        }
    }

    #[test]
    fn requests_parse_into_typed_methods() {
        let body = r#"{"jsonrpc":"2.0","id":"a","method":"tools/call","params":{"name":"echo","arguments":{"x":1},
            "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let Ok(ClientMessage::Request(request)) = parse(body.as_bytes()) else { panic!("not a request") };
        assert_eq!(request.id, RequestId::String("a".into()));
        assert_eq!(request.meta.protocol_version.as_deref(), Some("2026-07-28"));
        let Method::CallTool(call) = request.method else { panic!("not tools/call") };
        assert_eq!((call.name.as_str(), call.arguments.get("x")), ("echo", Some(&json!(1))));
        let Ok(ClientMessage::Request(request)) = parse(br#"{"jsonrpc":"2.0","id":7,"method":"x/y"}"#) else {
            panic!("not a request")
        };
        assert!(matches!(request.method, Method::Unsupported(ref m) if m == "x/y"));
    }

    #[test]
    fn task_requests_and_the_meta_the_gateway_acts_on_are_read() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","task":{"ttl":60000},
            "_meta":{"progressToken":"p-1","io.modelcontextprotocol/clientCapabilities":
            {"extensions":{"io.modelcontextprotocol/tasks":{}}}}}}"#;
        let Ok(ClientMessage::Request(request)) = parse(body.as_bytes()) else { panic!("not a request") };
        assert_eq!(request.meta.progress_token, Some(ProgressToken::String("p-1".into())));
        assert!(request.meta.declares_tasks_extension);
        let Method::CallTool(call) = request.method else { panic!("not tools/call") };
        assert!(call.as_task);
        // A malformed progress token costs only itself.
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"abc",
            "_meta":{"progressToken":{"x":1},"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#;
        let Ok(ClientMessage::Request(request)) = parse(body.as_bytes()) else { panic!("not a request") };
        assert_eq!((request.meta.progress_token, request.meta.protocol_version.as_deref()), (None, Some("2026-07-28")));
        assert!(matches!(request.method, Method::Task(TaskMethod::Get, ref id) if id == "abc"));
        let Ok(ClientMessage::Request(request)) = parse(br#"{"jsonrpc":"2.0","id":2,"method":"tasks/list"}"#) else {
            panic!("not a request")
        };
        assert!(matches!(request.method, Method::ListTasks { cursor: None }));
    }

    #[test]
    fn notifications_and_client_responses_need_no_answer() {
        let body = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
        assert!(matches!(parse(body.as_bytes()), Ok(ClientMessage::NoAnswer)), "{body}");
        let Ok(ClientMessage::Answer { id, response }) = parse(br#"{"jsonrpc":"2.0","id":"a-5","result":{"x":1}}"#)
        else {
            panic!("not an answer")
        };
        assert_eq!((id, response["result"]["x"].as_i64()), (RequestId::String("a-5".into()), Some(1)));
    }

    #[test]
    fn malformed_messages_are_refused_with_their_codes() {
        for (body, code, id) in [
            ("{", PARSE_ERROR, Value::Null),
            ("[]", INVALID_REQUEST, Value::Null),
            (r#"{"jsonrpc":"2.0","id":{"x":1},"method":"ping"}"#, INVALID_REQUEST, Value::Null),
            (r#"{"id":3,"method":"ping"}"#, INVALID_REQUEST, json!(3)),
            (r#"{"jsonrpc":"2.0","id":3,"method":4}"#, INVALID_REQUEST, json!(3)),
        ] {
            let rejection = rejected(body);
            assert!(rejection.malformed, "{body}");
            assert_eq!((rejection.body["error"]["code"].as_i64(), &rejection.body["id"]), (Some(code), &id), "{body}");
        }
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":[1]}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":7}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/list","params":{"cursor":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","task":true}}"#,
        ] {
            let rejection = rejected(body);
            assert!(!rejection.malformed, "{body}");
            assert_eq!(rejection.body["error"]["code"], INVALID_PARAMS, "{body}");
            assert_eq!(rejection.body["id"], 1, "{body}");
        }
    }
}
