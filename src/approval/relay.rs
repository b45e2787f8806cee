//! What an upstream says to the client during a call that is not the call's answer:
//! `notifications/progress` and `notifications/message`, passed on as JSON-RPC
//! notifications in the client's terms (its own progress token), and the requests it
//! asks the client (`sampling/createMessage`, `elicitation/create`), under request ids
//! of the gateway's own whose answers the client POSTs back ([`ClientAnswers`]). A
//! channel, so the executor never waits for the client to read: when the client has
//! hung up, messages are dropped and the call goes on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;

use super::relay_record::NoAnswer;

/// The client side of one call's messages.
#[derive(Debug, Clone)]
pub struct CallRelay {
    /// The progress token the client sent with its call (`_meta.progressToken`), if any:
    /// upstream progress is passed on only when the client asked for it.
    pub progress_token: Option<Value>,
    /// Where each message goes, a whole JSON-RPC message.
    pub messages: UnboundedSender<Value>,
    /// The agent the call is for: only its own POSTs answer its requests.
    pub agent: String,
    /// Where the client's answers to requests come back.
    pub answers: Arc<ClientAnswers>,
}

/// Why a request to the client got no result.
#[derive(Debug)]
pub enum AskError {
    /// The client hung up, or did not answer in time.
    NoAnswer(NoAnswer),
    /// The client answered with this JSON-RPC error object.
    Refused(Value),
}

impl CallRelay {
    /// Passes one message on; false when the client is gone.
    pub fn send(&self, message: Value) -> bool {
        self.messages.send(message).is_ok()
    }

    /// Sends the client a request on the call's stream and waits (at most `timeout`) for
    /// the answer it POSTs back: the `result`, or its error.
    pub async fn ask(&self, method: &str, params: Value, timeout: Duration) -> Result<Value, AskError> {
        let id = format!("alexandria-{}", uuid::Uuid::new_v4());
        let (answer, answered) = oneshot::channel();
        let _pending = self.answers.expect(&id, &self.agent, answer);
        if !self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})) {
            return Err(AskError::NoAnswer(NoAnswer::ClientHungUp));
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(mut message)) => match message.get_mut("result") {
                Some(result) => Ok(result.take()),
                None => Err(AskError::Refused(message.get("error").cloned().unwrap_or(Value::Null))),
            },
            Ok(Err(_)) => Err(AskError::NoAnswer(NoAnswer::ClientHungUp)),
            Err(_) => Err(AskError::NoAnswer(NoAnswer::TimedOut)),
        }
    }
}

/// The requests asked of clients and not answered yet, by the gateway's request id, each
/// with the agent whose POST may answer it. In memory: an answer must come to the
/// replica whose call asked (the one holding the client's stream).
#[derive(Debug, Default)]
pub struct ClientAnswers {
    pending: Mutex<HashMap<String, (String, oneshot::Sender<Value>)>>,
}

/// Takes a pending request out when its asker stops waiting.
pub struct Expected<'a> {
    answers: &'a ClientAnswers,
    id: String,
}

impl Drop for Expected<'_> {
    fn drop(&mut self) {
        self.answers.lock().remove(&self.id);
    }
}

impl ClientAnswers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, oneshot::Sender<Value>)>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expect(&self, id: &str, agent: &str, answer: oneshot::Sender<Value>) -> Expected<'_> {
        self.lock().insert(id.to_owned(), (agent.to_owned(), answer));
        Expected { answers: self, id: id.to_owned() }
    }

    /// Hands `agent`'s answer (a JSON-RPC response object) to the request `id` waiting
    /// for it; false when none of this agent's requests has that id.
    pub fn deliver(&self, agent: &str, id: &str, response: Value) -> bool {
        let mut pending = self.lock();
        if pending.get(id).is_none_or(|(asker, _)| asker != agent) {
            return false;
        }
        pending.remove(id).is_some_and(|(_, answer)| answer.send(response).is_ok())
    }

    /// Requests waiting for an answer.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_answer_reaches_its_request_only_from_its_own_agent() {
        let answers = Arc::new(ClientAnswers::default());
        let (messages, mut sent) = tokio::sync::mpsc::unbounded_channel();
        let relay = CallRelay { progress_token: None, messages, agent: "a".into(), answers: Arc::clone(&answers) };
        let asking =
            tokio::spawn(async move { relay.ask("sampling/createMessage", json!({}), Duration::from_secs(5)).await });
        let request = sent.recv().await.expect("the request");
        let id = request["id"].as_str().expect("a string id").to_owned();
        assert!(!answers.deliver("b", &id, json!({"result": {"x": 1}})), "another agent cannot answer");
        assert!(answers.deliver("a", &id, json!({"result": {"x": 2}})));
        assert_eq!(asking.await.expect("joined").expect("answered"), json!({"x": 2}));
        assert_eq!(answers.waiting(), 0);
    }
}
