//! Every legal and illegal transition, given/when/then.

use chrono::{DateTime, Duration, TimeZone, Utc};
use cqrs_es::test::TestFramework;
use serde_json::json;

use super::*;

type Framework = TestFramework<PermissionRequest>;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}
fn later(secs: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(secs)
}
fn expires() -> DateTime<Utc> {
    later(3600)
}

fn create_cmd() -> PermissionRequestCommand {
    PermissionRequestCommand::Create {
        agent: "demo-agent".into(),
        tool: "write_file".into(),
        arguments: json!({"path": "/tmp/x", "content": "hi"}),
        idempotency_key: "k1".into(),
        requested_by: "agent:demo-agent".into(),
        at: t0(),
        expires_at: expires(),
    }
}
fn created() -> PermissionRequestEvent {
    PermissionRequestEvent::Created {
        request_type: "tool_call".into(),
        agent: "demo-agent".into(),
        tool: "write_file".into(),
        arguments: json!({"path": "/tmp/x", "content": "hi"}),
        arguments_digest: crate::arguments_digest(&json!({"content": "hi", "path": "/tmp/x"})),
        idempotency_key: "k1".into(),
        requested_by: "agent:demo-agent".into(),
        at: t0(),
        expires_at: expires(),
    }
}
/// The execution deadline of `approve()`.
fn execute_by() -> DateTime<Utc> {
    later(7200)
}
fn approved() -> PermissionRequestEvent {
    PermissionRequestEvent::Approved { by: "admin".into(), at: later(10), execute_by: Some(execute_by()) }
}
fn rejected() -> PermissionRequestEvent {
    PermissionRequestEvent::Rejected { by: "admin".into(), at: later(10), reason: "no".into() }
}
fn expired() -> PermissionRequestEvent {
    PermissionRequestEvent::Expired { at: later(3600) }
}
fn withdrawn() -> PermissionRequestEvent {
    PermissionRequestEvent::Withdrawn { by: "agent:demo-agent".into(), at: later(5) }
}
fn withdraw() -> PermissionRequestCommand {
    PermissionRequestCommand::Withdraw { by: "agent:demo-agent".into(), at: later(5) }
}
fn executed() -> PermissionRequestEvent {
    PermissionRequestEvent::Executed { replica: "r1".into(), at: later(20) }
}
fn outcome() -> CallOutcome {
    CallOutcome::Result(json!({"content": [{"type": "text", "text": "ok"}], "isError": false}))
}
fn result_cached() -> PermissionRequestEvent {
    PermissionRequestEvent::ResultCached { outcome: outcome(), at: later(21) }
}

fn approve() -> PermissionRequestCommand {
    PermissionRequestCommand::Approve { by: "admin".into(), at: later(10), execute_by: execute_by() }
}
fn reject(reason: &str) -> PermissionRequestCommand {
    PermissionRequestCommand::Reject { by: "admin".into(), at: later(10), reason: reason.into() }
}
fn claim() -> PermissionRequestCommand {
    PermissionRequestCommand::ClaimExecution { replica: "r1".into(), at: later(20) }
}
fn cache() -> PermissionRequestCommand {
    PermissionRequestCommand::CacheResult { outcome: outcome(), at: later(21) }
}

// ---- Create ----

#[test]
fn create_on_a_new_request_records_created() {
    Framework::with(()).given_no_previous_events().when(create_cmd()).then_expect_events(vec![created()]);
}

#[test]
fn create_again_with_the_same_call_is_a_no_op() {
    Framework::with(()).given(vec![created()]).when(create_cmd()).then_expect_events(vec![]);
}

#[test]
fn create_again_with_reordered_but_equal_arguments_is_a_no_op() {
    let mut cmd = create_cmd();
    if let PermissionRequestCommand::Create { arguments, .. } = &mut cmd {
        *arguments = serde_json::from_str(r#"{"content":"hi","path":"/tmp/x"}"#).unwrap();
    }
    Framework::with(()).given(vec![created()]).when(cmd).then_expect_events(vec![]);
}

#[test]
fn create_again_with_other_arguments_is_a_conflict() {
    let mut cmd = create_cmd();
    if let PermissionRequestCommand::Create { arguments, .. } = &mut cmd {
        *arguments = json!({"path": "/tmp/other", "content": "hi"});
    }
    Framework::with(()).given(vec![created()]).when(cmd).then_expect_error(
        PermissionRequestError::IdempotencyConflict {
            idempotency_key: "k1".into(),
            existing_tool: "write_file".into(),
        },
    );
}

#[test]
fn create_again_with_another_tool_is_a_conflict() {
    let mut cmd = create_cmd();
    if let PermissionRequestCommand::Create { tool, .. } = &mut cmd {
        *tool = "read_file".into();
    }
    Framework::with(()).given(vec![created()]).when(cmd).then_expect_error(
        PermissionRequestError::IdempotencyConflict {
            idempotency_key: "k1".into(),
            existing_tool: "write_file".into(),
        },
    );
}

#[test]
fn create_after_a_decision_with_the_same_call_is_still_a_no_op() {
    Framework::with(())
        .given(vec![created(), approved(), executed(), result_cached()])
        .when(create_cmd())
        .then_expect_events(vec![]);
}

#[test]
fn create_with_an_empty_tool_is_refused() {
    let mut cmd = create_cmd();
    if let PermissionRequestCommand::Create { tool, .. } = &mut cmd {
        tool.clear();
    }
    Framework::with(()).given_no_previous_events().when(cmd).then_expect_error(PermissionRequestError::Empty("tool"));
}

// ---- commands before Create ----

#[test]
fn every_other_command_on_a_missing_request_is_not_found() {
    for cmd in [approve(), reject("x"), PermissionRequestCommand::Expire { at: later(9999) }, claim(), cache()] {
        Framework::with(()).given_no_previous_events().when(cmd).then_expect_error(PermissionRequestError::NotFound);
    }
}

// ---- Approve ----

#[test]
fn approve_a_pending_request() {
    Framework::with(()).given(vec![created()]).when(approve()).then_expect_events(vec![approved()]);
}

#[test]
fn approve_twice_is_refused() {
    Framework::with(())
        .given(vec![created(), approved()])
        .when(approve())
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Approved });
}

#[test]
fn approve_after_reject_is_refused() {
    Framework::with(())
        .given(vec![created(), rejected()])
        .when(approve())
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Rejected });
}

#[test]
fn approve_after_expiry_is_refused() {
    Framework::with(())
        .given(vec![created(), expired()])
        .when(approve())
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Expired });
}

#[test]
fn approve_past_the_deadline_is_refused_even_before_expire_is_recorded() {
    Framework::with(())
        .given(vec![created()])
        .when(PermissionRequestCommand::Approve { by: "admin".into(), at: expires(), execute_by: later(9999) })
        .then_expect_error(PermissionRequestError::ApprovalWindowClosed { expires_at: expires() });
}

#[test]
fn approve_after_execution_is_refused() {
    Framework::with(())
        .given(vec![created(), approved(), executed()])
        .when(approve())
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Executing });
}

// ---- Reject ----

#[test]
fn reject_a_pending_request_with_a_reason() {
    Framework::with(()).given(vec![created()]).when(reject("no")).then_expect_events(vec![rejected()]);
}

#[test]
fn reject_trims_its_reason() {
    Framework::with(()).given(vec![created()]).when(reject("  no \n")).then_expect_events(vec![rejected()]);
}

#[test]
fn reject_without_a_reason_is_refused() {
    Framework::with(())
        .given(vec![created()])
        .when(reject("   "))
        .then_expect_error(PermissionRequestError::InvalidReason);
}

#[test]
fn reject_with_an_overlong_reason_is_refused() {
    let long = "x".repeat(MAX_REASON_CHARS + 1);
    Framework::with(())
        .given(vec![created()])
        .when(reject(&long))
        .then_expect_error(PermissionRequestError::InvalidReason);
    let exact = "é".repeat(MAX_REASON_CHARS);
    let events = Framework::with(()).given(vec![created()]).when(reject(&exact)).inspect_result().unwrap();
    assert_eq!(events.len(), 1);
}

#[test]
fn reject_with_a_nul_in_its_reason_is_refused() {
    Framework::with(())
        .given(vec![created()])
        .when(reject("no\0way"))
        .then_expect_error(PermissionRequestError::InvalidReason);
}

#[test]
fn reject_after_approve_is_refused() {
    Framework::with(())
        .given(vec![created(), approved()])
        .when(reject("no"))
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Approved });
}

#[test]
fn reject_twice_is_refused() {
    Framework::with(())
        .given(vec![created(), rejected()])
        .when(reject("again"))
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Rejected });
}

#[test]
fn reject_after_expiry_is_refused() {
    Framework::with(())
        .given(vec![created(), expired()])
        .when(reject("no"))
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Expired });
}

// ---- Expire ----

#[test]
fn expire_a_pending_request_past_its_deadline() {
    Framework::with(())
        .given(vec![created()])
        .when(PermissionRequestCommand::Expire { at: later(3600) })
        .then_expect_events(vec![expired()]);
}

#[test]
fn expire_before_the_deadline_is_refused() {
    Framework::with(())
        .given(vec![created()])
        .when(PermissionRequestCommand::Expire { at: later(3599) })
        .then_expect_error(PermissionRequestError::NotYetExpired { expires_at: expires() });
}

#[test]
fn expire_a_decided_request_is_refused() {
    for (given, status) in [
        (vec![created(), rejected()], RequestStatus::Rejected),
        (vec![created(), expired()], RequestStatus::Expired),
        (vec![created(), approved(), executed(), result_cached()], RequestStatus::Executed),
    ] {
        Framework::with(())
            .given(given)
            .when(PermissionRequestCommand::Expire { at: later(99_999) })
            .then_expect_error(PermissionRequestError::NotPending { status });
    }
}

// ---- The execution deadline of an approved call ----

#[test]
fn an_approved_call_not_run_by_its_deadline_expires() {
    Framework::with(())
        .given(vec![created(), approved()])
        .when(PermissionRequestCommand::Expire { at: execute_by() })
        .then_expect_events(vec![PermissionRequestEvent::Expired { at: execute_by() }]);
    assert!(matches!(
        PermissionRequest::from_events([created(), approved(), PermissionRequestEvent::Expired { at: execute_by() }]),
        PermissionRequest::Expired { .. }
    ));
}

#[test]
fn an_approved_call_does_not_expire_before_its_deadline() {
    Framework::with(())
        .given(vec![created(), approved()])
        .when(PermissionRequestCommand::Expire { at: later(7199) })
        .then_expect_error(PermissionRequestError::NotYetExpired { expires_at: execute_by() });
}

#[test]
fn an_approved_call_cannot_be_claimed_past_its_deadline() {
    Framework::with(())
        .given(vec![created(), approved()])
        .when(PermissionRequestCommand::ClaimExecution { replica: "r1".into(), at: execute_by() })
        .then_expect_error(PermissionRequestError::ExecutionWindowClosed { execute_by: execute_by() });
}

#[test]
fn an_approval_recorded_without_a_deadline_never_expires() {
    let old = PermissionRequestEvent::Approved { by: "admin".into(), at: later(10), execute_by: None };
    Framework::with(())
        .given(vec![created(), old.clone()])
        .when(PermissionRequestCommand::Expire { at: later(99_999) })
        .then_expect_error(PermissionRequestError::NotPending { status: RequestStatus::Approved });
    Framework::with(()).given(vec![created(), old]).when(claim()).then_expect_events(vec![executed()]);
    // Stored before the field existed: it reads as no deadline.
    let stored: PermissionRequestEvent =
        serde_json::from_value(json!({"Approved": {"by": "admin", "at": later(10)}})).unwrap();
    assert!(matches!(stored, PermissionRequestEvent::Approved { execute_by: None, .. }));
}

// ---- Withdraw ----

#[test]
fn withdraw_a_pending_request() {
    Framework::with(()).given(vec![created()]).when(withdraw()).then_expect_events(vec![withdrawn()]);
}

#[test]
fn a_decided_executing_or_closed_request_cannot_be_withdrawn() {
    for (given, status) in [
        (vec![created(), approved()], RequestStatus::Approved),
        (vec![created(), approved(), executed()], RequestStatus::Executing),
        (vec![created(), approved(), executed(), result_cached()], RequestStatus::Executed),
        (vec![created(), rejected()], RequestStatus::Rejected),
        (vec![created(), expired()], RequestStatus::Expired),
        (vec![created(), withdrawn()], RequestStatus::Withdrawn),
    ] {
        Framework::with(())
            .given(given)
            .when(withdraw())
            .then_expect_error(PermissionRequestError::NotPending { status });
    }
}

#[test]
fn withdraw_past_the_deadline_is_refused_even_before_expire_is_recorded() {
    Framework::with(())
        .given(vec![created()])
        .when(PermissionRequestCommand::Withdraw { by: "agent:demo-agent".into(), at: expires() })
        .then_expect_error(PermissionRequestError::ApprovalWindowClosed { expires_at: expires() });
}

#[test]
fn a_withdrawn_request_can_be_neither_approved_nor_rejected_nor_claimed() {
    let given = || vec![created(), withdrawn()];
    let not_pending = PermissionRequestError::NotPending { status: RequestStatus::Withdrawn };
    Framework::with(()).given(given()).when(approve()).then_expect_error(not_pending.clone());
    Framework::with(()).given(given()).when(reject("no")).then_expect_error(not_pending);
    Framework::with(())
        .given(given())
        .when(claim())
        .then_expect_error(PermissionRequestError::NotApproved { status: RequestStatus::Withdrawn });
}

// ---- ClaimExecution ----

#[test]
fn claim_an_approved_request() {
    Framework::with(()).given(vec![created(), approved()]).when(claim()).then_expect_events(vec![executed()]);
}

#[test]
fn claim_before_approval_is_refused() {
    Framework::with(())
        .given(vec![created()])
        .when(claim())
        .then_expect_error(PermissionRequestError::NotApproved { status: RequestStatus::Pending });
}

#[test]
fn claim_a_rejected_or_expired_request_is_refused() {
    Framework::with(())
        .given(vec![created(), rejected()])
        .when(claim())
        .then_expect_error(PermissionRequestError::NotApproved { status: RequestStatus::Rejected });
    Framework::with(())
        .given(vec![created(), expired()])
        .when(claim())
        .then_expect_error(PermissionRequestError::NotApproved { status: RequestStatus::Expired });
}

#[test]
fn claim_twice_is_refused() {
    Framework::with(())
        .given(vec![created(), approved(), executed()])
        .when(claim())
        .then_expect_error(PermissionRequestError::AlreadyClaimed);
    Framework::with(())
        .given(vec![created(), approved(), executed(), result_cached()])
        .when(claim())
        .then_expect_error(PermissionRequestError::AlreadyClaimed);
}

// ---- CacheResult ----

#[test]
fn cache_the_result_of_a_claimed_request() {
    Framework::with(())
        .given(vec![created(), approved(), executed()])
        .when(cache())
        .then_expect_events(vec![result_cached()]);
}

#[test]
fn cache_a_jsonrpc_error_outcome() {
    let outcome = CallOutcome::Error { code: -32603, message: "boom".into(), data: None };
    Framework::with(())
        .given(vec![created(), approved(), executed()])
        .when(PermissionRequestCommand::CacheResult { outcome: outcome.clone(), at: later(21) })
        .then_expect_events(vec![PermissionRequestEvent::ResultCached { outcome, at: later(21) }]);
}

#[test]
fn cache_before_claim_is_refused() {
    Framework::with(())
        .given(vec![created(), approved()])
        .when(cache())
        .then_expect_error(PermissionRequestError::NotClaimed);
    Framework::with(()).given(vec![created()]).when(cache()).then_expect_error(PermissionRequestError::NotClaimed);
}

#[test]
fn cache_twice_is_refused() {
    Framework::with(())
        .given(vec![created(), approved(), executed(), result_cached()])
        .when(cache())
        .then_expect_error(PermissionRequestError::ResultAlreadyCached);
}

// ---- state ----

#[test]
fn folding_the_full_history_gives_the_final_state() {
    let state = PermissionRequest::from_events([created(), approved(), executed(), result_cached()]);
    assert_eq!(state.status(), Some(RequestStatus::Executed));
    assert_eq!(state.review().map(|r| r.by.as_str()), Some("admin"));
    assert_eq!(state.claim().map(|c| c.replica.as_str()), Some("r1"));
    assert_eq!(state.outcome(), Some(&outcome()));
    assert_eq!(state.result_cached_at(), Some(later(21)));
    let details = state.details().unwrap();
    assert_eq!(details.tool, "write_file");
    assert_eq!(details.expires_at, expires());
}

#[test]
fn each_state_carries_exactly_its_facts() {
    let details = || PermissionRequest::from_events([created()]).details().unwrap().clone();
    let review = || Review { by: "admin".into(), at: later(10) };
    let claim = || Claim { replica: "r1".into(), at: later(20) };
    assert_eq!(PermissionRequest::from_events([]), PermissionRequest::New);
    assert_eq!(PermissionRequest::from_events([created()]), PermissionRequest::Pending { details: details() });
    assert_eq!(
        PermissionRequest::from_events([created(), approved()]),
        PermissionRequest::Approved { details: details(), review: review(), execute_by: Some(execute_by()) }
    );
    assert_eq!(
        PermissionRequest::from_events([created(), rejected()]),
        PermissionRequest::Rejected { details: details(), review: review(), reason: "no".into() }
    );
    assert_eq!(
        PermissionRequest::from_events([created(), expired()]),
        PermissionRequest::Expired { details: details(), expired_at: later(3600) }
    );
    assert_eq!(
        PermissionRequest::from_events([created(), approved(), executed()]),
        PermissionRequest::Executing { details: details(), review: review(), claim: claim() }
    );
    assert_eq!(
        PermissionRequest::from_events([created(), approved(), executed(), result_cached()]),
        PermissionRequest::Executed {
            details: details(),
            review: review(),
            claim: claim(),
            outcome: outcome(),
            cached_at: later(21),
        }
    );
}

#[test]
fn each_event_leads_to_the_status_it_names() {
    for history in [
        vec![created()],
        vec![created(), approved()],
        vec![created(), rejected()],
        vec![created(), expired()],
        vec![created(), approved(), executed()],
        vec![created(), approved(), executed(), result_cached()],
        vec![created(), withdrawn()],
    ] {
        let mut state = PermissionRequest::default();
        for event in history {
            let after = event.status_after();
            assert!(state.try_evolve(event), "a legal transition applies");
            assert_eq!(state.status(), Some(after));
        }
    }
    assert_eq!(executed().status_after().as_str(), "executing");
    assert_eq!(result_cached().status_after().as_str(), "executed");
}

#[test]
fn an_event_that_cannot_follow_the_state_is_ignored() {
    for (given, event) in [
        (vec![], approved()),
        (vec![], result_cached()),
        (vec![created()], created()),
        (vec![created()], executed()),
        (vec![created(), approved()], rejected()),
        (vec![created(), approved()], result_cached()),
        (vec![created(), rejected()], approved()),
        (vec![created(), expired()], executed()),
        (vec![created(), approved()], withdrawn()),
        (vec![created(), withdrawn()], approved()),
        (vec![created(), approved(), executed(), result_cached()], result_cached()),
    ] {
        let before = PermissionRequest::from_events(given);
        let mut state = before.clone();
        assert!(!state.try_evolve(event.clone()), "{event:?} after {before:?}");
        assert_eq!(state, before);
    }
}

#[test]
fn events_serialize_with_their_type_as_the_outer_key() {
    let value = serde_json::to_value(approved()).unwrap();
    assert_eq!(value["Approved"]["by"], "admin");
    assert_eq!(approved().event_type(), "Approved");
    let back: PermissionRequestEvent = serde_json::from_value(value).unwrap();
    assert_eq!(back, approved());
}
