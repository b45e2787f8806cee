//! JSON-RPC framing (`alexandria::mcp::jsonrpc::parse`, every body posted to the MCP
//! endpoint): any bytes become a typed message or the JSON-RPC error that says why not,
//! never a panic, and the answer agrees with the body:
//! - a parse error exactly when the body is not JSON;
//! - a request keeps the id it was sent with, and so does a refusal once the id was read;
//! - only a refused method's parameters are a 200 with an error; everything else is a 400;
//! - no NUL character gets into a `tools/call` (PostgreSQL cannot store one).
#![no_main]

use alexandria::mcp::jsonrpc::{parse, ClientMessage, Method, INVALID_PARAMS, INVALID_REQUEST, PARSE_ERROR};
use alexandria::validation::contains_nul;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|body: &[u8]| {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let sent_id = json.as_ref().and_then(Value::as_object).and_then(|message| message.get("id"));
    match parse(body) {
        Ok(ClientMessage::Request(request)) => {
            let sent_id = sent_id.expect("a request has an id");
            assert_eq!(&serde_json::to_value(&request.id).unwrap(), sent_id);
            if let Method::CallTool(call) = &request.method {
                assert!(!call.name.contains('\0'));
                assert!(!call.arguments.iter().any(|(key, value)| key.contains('\0') || contains_nul(value)));
            }
        }
        Ok(ClientMessage::NoAnswer) => {
            let json = json.expect("only JSON is accepted");
            assert_eq!(json["jsonrpc"], "2.0");
        }
        Err(rejection) => {
            let body = &rejection.body;
            assert_eq!(body["jsonrpc"], "2.0");
            let code = body["error"]["code"].as_i64().expect("an error has a numeric code");
            assert!(matches!(code, PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS), "code {code}");
            assert!(body["error"]["message"].is_string());
            assert_eq!(code == PARSE_ERROR, json.is_none());
            assert_eq!(rejection.malformed, code != INVALID_PARAMS);
            if let Some(id @ (Value::String(_) | Value::Number(_))) = sent_id {
                assert_eq!(&body["id"], id);
            }
            serde_json::to_vec(body).expect("the error serializes");
        }
    }
});
