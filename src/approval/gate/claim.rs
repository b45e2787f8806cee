//! A claimed call: running it upstream exactly once, recording its outcome, and the rule
//! that says when a claim without an outcome counts as abandoned ("outcome unknown").

use std::time::Duration;

use alexandria_domain::{CallOutcome, EventMetadata, PermissionRequest, PermissionRequestCommand as Command};
use alexandria_projections::Backoff;
use chrono::Utc;
use serde_json::Value;
use tokio::time::Instant;
use uuid::Uuid;

use super::{Gate, GateResponse};
use crate::approval::store::Versioned;
use crate::approval::{CallOrigin, CallRelay};

/// JSON-RPC "internal error": what the gateway answers for an outcome it cannot keep.
const INTERNAL_ERROR: i64 = -32603;

/// The waits between tries to record an executed call's outcome.
const CACHE_RETRY: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
/// How long past the upstream call's timeout the claimer keeps trying to record the
/// outcome; after that it gives up and the outcome is unknown.
const CACHE_WINDOW: Duration = Duration::from_secs(10);
/// What a reader adds to that before calling a claim abandoned: clocks of replicas that
/// disagree (the claim's time is the claimer's), and an append that was in flight when the
/// claimer gave up.
const CLAIM_CLOCK_ALLOWANCE: Duration = Duration::from_secs(5);

/// The rule that makes "outcome unknown" safe: the claimer stops trying to record an
/// outcome `call_timeout + CACHE_WINDOW` after its claim (by its clock), and a claim
/// counts as abandoned only `CLAIM_CLOCK_ALLOWANCE` later (by the reader's): so no outcome
/// is recorded after anyone was told it is unknown.
fn abandoned_after(call_timeout: Duration) -> Duration {
    call_timeout + CACHE_WINDOW + CLAIM_CLOCK_ALLOWANCE
}

/// The deepest outcome the log records. Events are read back with serde_json, which
/// refuses nesting deeper than 128 levels, and an outcome sits 4 levels down in its event
/// (`{"ResultCached":{"outcome":{"result": …}}}`): an outcome deeper than this would be an
/// event nobody can read again (the request, its projections and exports all stuck).
const MAX_OUTCOME_DEPTH: usize = 100;
/// The largest outcome the log records, as JSON.
const MAX_OUTCOME_BYTES: usize = 16 * 1024 * 1024;

/// The outcome as the log can hold it: one too deep or too large to record becomes the
/// gateway's error saying so (the upstream did run: the call is not retried).
fn recordable(outcome: CallOutcome) -> CallOutcome {
    let value = match &outcome {
        CallOutcome::Result(result) => result,
        CallOutcome::Error { data: Some(data), .. } => data,
        CallOutcome::Error { data: None, .. } => return outcome,
    };
    let problem = if depth(value) > MAX_OUTCOME_DEPTH {
        Some(format!("more than {MAX_OUTCOME_DEPTH} levels deep (too deeply nested to record)"))
    } else if serde_json::to_vec(value).map_or(true, |bytes| bytes.len() > MAX_OUTCOME_BYTES) {
        Some(format!("larger than {MAX_OUTCOME_BYTES} bytes"))
    } else {
        None
    };
    match problem {
        None => outcome,
        Some(problem) => CallOutcome::Error {
            code: INTERNAL_ERROR,
            message: format!("the upstream ran the call, but its answer is {problem}; it was not kept"),
            data: None,
        },
    }
}

/// How deeply `value` nests (a scalar is 0), without recursion.
fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, level)) = stack.pop() {
        deepest = deepest.max(level);
        match value {
            Value::Array(items) => stack.extend(items.iter().map(|item| (item, level + 1))),
            Value::Object(map) => stack.extend(map.values().map(|item| (item, level + 1))),
            _ => {}
        }
    }
    deepest
}

impl Gate {
    /// Whether an executing request's claim is older than any upstream call may take:
    /// the process that claimed it died mid-call.
    pub(super) fn claim_abandoned(&self, state: &PermissionRequest) -> bool {
        let Some(details) = state.details() else { return false };
        let claimed_at = state.claim().map_or(details.created_at, |claim| claim.at);
        let abandoned_after = chrono::Duration::from_std(abandoned_after(self.settings.call_timeout))
            .unwrap_or(chrono::Duration::minutes(2));
        Utc::now() - claimed_at > abandoned_after
    }

    /// Runs the call upstream exactly once (this caller won the claim) and caches the
    /// outcome for every retry. In a task of [`Self::claimed_calls`]: it finishes, and its
    /// outcome is recorded, even if whoever drove it (a connection, a task poll) is gone
    /// and the process is stopping.
    pub(super) async fn execute_claimed(
        &self,
        id: Uuid,
        claimed: Versioned,
        metadata: &EventMetadata,
        relay: Option<CallRelay>,
    ) -> GateResponse {
        let Some(details) = claimed.state.details() else {
            return GateResponse::Unavailable(format!("permission request {id} has no details"));
        };
        let gate = self.clone();
        let origin = CallOrigin::gated(id, &details.agent, &details.tool, &metadata.trace_id);
        let metadata = metadata.clone();
        let run =
            self.claimed_calls.spawn(async move { gate.run_claimed(id, claimed, &metadata, origin, relay).await });
        run.await.unwrap_or_else(|error| GateResponse::Unavailable(format!("the claimed call failed: {error}")))
    }

    /// `claimed`: the request as the claim left it. The result is appended right after
    /// it without reading again (should anything have appended first, the insert is
    /// refused and the append reads the request as usual).
    async fn run_claimed(
        &self,
        id: Uuid,
        claimed: Versioned,
        metadata: &EventMetadata,
        origin: CallOrigin,
        relay: Option<CallRelay>,
    ) -> GateResponse {
        // Measured from (just after) the claim; the upstream call itself is bounded by
        // the same `call_timeout` (see `abandoned_after`).
        let give_up = Instant::now() + self.settings.call_timeout + CACHE_WINDOW;
        let Some(details) = claimed.state.details() else {
            return GateResponse::Unavailable(format!("permission request {id} has no details"));
        };
        let outcome = recordable(self.executor.execute(&details.tool, &details.arguments, origin, relay).await);
        let cache = Command::CacheResult { outcome: outcome.clone(), at: Utc::now() };
        // The upstream call happened; failing to record it must not turn into a second
        // execution. Retry the append until `give_up`, then report what we have.
        let mut failures = CACHE_RETRY.retries();
        loop {
            match tokio::time::timeout_at(give_up, self.store.execute_after(id, &claimed, cache.clone(), metadata))
                .await
            {
                Ok(Ok(_)) => break,
                Ok(Err(error)) => {
                    let attempt = failures.failures();
                    tracing::error!(request_id = %id, attempt, %error, "cannot cache the result of an executed call");
                    let retry_at = Instant::now() + failures.next_delay();
                    if retry_at >= give_up {
                        tracing::error!(request_id = %id, "giving up: the outcome of this call stays unknown");
                        break;
                    }
                    tokio::time::sleep_until(retry_at).await;
                }
                Err(_) => {
                    tracing::error!(request_id = %id, "giving up: the outcome of this call stays unknown");
                    break;
                }
            }
        }
        GateResponse::Completed(outcome)
    }

    /// Shutdown: waits for this process's claimed calls to finish and record their
    /// outcomes, so none is cut in half when the upstream sessions close next. Bounded:
    /// each gives up `call_timeout + CACHE_WINDOW` after its claim. Whether all finished.
    pub async fn finish_claimed_calls(&self) -> bool {
        self.claimed_calls.close();
        let bound = self.settings.call_timeout + CACHE_WINDOW;
        tokio::time::timeout(bound, self.claimed_calls.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_the_log_cannot_read_back_becomes_an_error_and_others_pass_unchanged() {
        let nested =
            |levels: usize| (0..levels).fold(serde_json::json!({}), |inner, _| serde_json::json!({"n": inner}));
        let fine = CallOutcome::Result(serde_json::json!({"structuredContent": nested(90)}));
        assert_eq!(recordable(fine.clone()), fine);
        let deep = CallOutcome::Result(serde_json::json!({"structuredContent": nested(120)}));
        assert!(
            matches!(recordable(deep), CallOutcome::Error { code: INTERNAL_ERROR, message, .. } if message.contains("too deeply nested"))
        );
        let large = CallOutcome::Result(
            serde_json::json!({"content": [{"type": "text", "text": "x".repeat(MAX_OUTCOME_BYTES)}]}),
        );
        assert!(matches!(recordable(large), CallOutcome::Error { message, .. } if message.contains("larger than")));
        assert_eq!(depth(&serde_json::json!([[1], {"a": {"b": 2}}])), 3);
    }

    #[test]
    fn a_claim_counts_as_abandoned_only_after_its_claimer_gave_up_recording_the_outcome() {
        for call_timeout in [Duration::ZERO, Duration::from_secs(1), Duration::from_secs(60)] {
            let claimer_gives_up = call_timeout + CACHE_WINDOW;
            assert!(abandoned_after(call_timeout) >= claimer_gives_up + CLAIM_CLOCK_ALLOWANCE);
        }
    }
}
