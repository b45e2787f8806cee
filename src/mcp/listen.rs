//! The server-to-client stream outside any request (a `GET` of the endpoint with
//! `Accept: text/event-stream`): what the upstreams announce that concerns this caller —
//! `notifications/resources/updated` for a resource it subscribed to (in this MCP
//! session, or agent-wide without one) and may still read, and the `list_changed`
//! notifications of prompts and resources when its policy allows any. Subscriptions are
//! this process's memory, like the streams they feed.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, PoisonError};

use serde_json::Value;
use tokio::sync::broadcast;

use super::exchange::{Caller, StreamedResponse};

/// Which resources each (agent, MCP session) subscribed to.
#[derive(Default)]
pub struct Subscriptions {
    by_client: Mutex<HashMap<(String, String), HashSet<String>>>,
}

impl Subscriptions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), HashSet<String>>> {
        self.by_client.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn subscribe(&self, agent: &str, session: &str, uri: &str) {
        self.lock().entry((agent.to_owned(), session.to_owned())).or_default().insert(uri.to_owned());
    }

    pub(super) fn unsubscribe(&self, agent: &str, session: &str, uri: &str) {
        let mut clients = self.lock();
        let key = (agent.to_owned(), session.to_owned());
        if let Some(uris) = clients.get_mut(&key) {
            uris.remove(uri);
            if uris.is_empty() {
                clients.remove(&key);
            }
        }
    }

    fn subscribed(&self, agent: &str, session: &str, uri: &str) -> bool {
        self.lock().get(&(agent.to_owned(), session.to_owned())).is_some_and(|uris| uris.contains(uri))
    }
}

/// Whether `notice` (a JSON-RPC notification from an upstream) goes to this client.
fn concerns(notice: &Value, caller: &Caller, session: &str, subscriptions: &Subscriptions) -> bool {
    match notice.get("method").and_then(Value::as_str) {
        Some("notifications/resources/updated") => {
            let uri = notice.pointer("/params/uri").and_then(Value::as_str).unwrap_or_default();
            caller.may_use_resource(uri) && subscriptions.subscribed(&caller.agent, session, uri)
        }
        Some("notifications/resources/list_changed") => !caller.allowed_resources.is_empty(),
        Some("notifications/prompts/list_changed") => !caller.allowed_prompts.is_empty(),
        _ => false,
    }
}

/// The caller's stream: every notice that concerns it, as long as the client reads.
pub(super) fn stream(
    caller: Caller,
    session: String,
    notices: broadcast::Receiver<Value>,
    subscriptions: std::sync::Arc<Subscriptions>,
) -> StreamedResponse {
    let stream = futures::stream::unfold(notices, move |mut notices| {
        let (caller, session, subscriptions) = (caller.clone(), session.clone(), subscriptions.clone());
        async move {
            loop {
                match notices.recv().await {
                    Ok(notice) if concerns(&notice, &caller, &session, &subscriptions) => {
                        return Some((notice, notices))
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    Box::pin(stream)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::names::Actor;

    fn caller(resources: &[&str]) -> Caller {
        Caller {
            agent: "a".into(),
            effective_tools: Vec::new(),
            approval_required_tools: Vec::new(),
            allowed_prompts: Vec::new(),
            allowed_resources: resources.iter().map(|r| r.to_string()).collect(),
            actor: Actor::Agent("a".into()),
        }
    }

    #[test]
    fn an_update_reaches_only_a_client_that_subscribed_and_may_read() {
        let subscriptions = Subscriptions::default();
        let updated = json!({"method": "notifications/resources/updated", "params": {"uri": "test://x"}});
        assert!(!concerns(&updated, &caller(&["test://*"]), "s1", &subscriptions));
        subscriptions.subscribe("a", "s1", "test://x");
        assert!(concerns(&updated, &caller(&["test://*"]), "s1", &subscriptions));
        assert!(!concerns(&updated, &caller(&["test://*"]), "s2", &subscriptions), "another session");
        assert!(!concerns(&updated, &caller(&["file://*"]), "s1", &subscriptions), "no longer allowed");
        subscriptions.unsubscribe("a", "s1", "test://x");
        assert!(!concerns(&updated, &caller(&["test://*"]), "s1", &subscriptions));
        let changed = json!({"method": "notifications/prompts/list_changed"});
        assert!(!concerns(&changed, &caller(&["test://*"]), "s1", &subscriptions), "no prompts allowed");
    }
}
