use serde_json::{json, Value};

use super::*;
use crate::audit::chain::{attach, line_hash, parse_hash};
use crate::audit::signing::AuditKey;

/// `n` sealed lines, positions 1..=n.
fn chain(n: i64) -> Vec<Value> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|position| {
            let mut line = json!({"position": position, "payload": {"n": position}});
            let hash = line_hash(&prev, &line);
            attach(&mut line, &prev, &hash);
            prev = hash;
            line
        })
        .collect()
}

fn check(lines: &[Value], key: Option<VerifyingKey>, checkpoints: Vec<Checkpoint>) -> VerifyReport {
    let mut verifier = ChainVerifier::new(key, checkpoints).unwrap();
    let mut scratch = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        verifier.push(summarize_value(i as u64 + 1, line, &mut scratch).unwrap());
    }
    verifier.finish(|_| None)
}

fn first(lines: &[Value]) -> (DivergenceKind, i64) {
    let divergence = check(lines, None, Vec::new()).divergence.expect("a divergence");
    (divergence.kind, divergence.position.unwrap())
}

#[test]
fn an_intact_chain_verifies_and_an_unsealed_tail_is_not_covered() {
    let mut lines = chain(5);
    lines.push(json!({"position": 6, "payload": {}}));
    let report = check(&lines, None, Vec::new());
    assert_eq!(report.divergence, None);
    assert_eq!((report.sealed, report.unsealed), (5, 1));
}

#[test]
fn each_kind_of_change_is_named_at_its_position() {
    let mut edited = chain(5);
    edited[2]["payload"]["n"] = json!(99);
    assert_eq!(first(&edited), (DivergenceKind::Edited, 3));

    let mut deleted = chain(5);
    deleted.remove(2);
    assert_eq!(first(&deleted), (DivergenceKind::Deleted, 4));

    let mut inserted = chain(5);
    inserted.insert(2, json!({"position": 9, "payload": {"forged": true}}));
    assert_eq!(first(&inserted), (DivergenceKind::Inserted, 9));

    let mut forged = chain(5);
    let mut line = json!({"position": 9, "payload": {}});
    attach(&mut line, &parse_hash(forged[1]["hash"].as_str().unwrap()).unwrap(), &[1; 32]);
    forged.insert(2, line);
    assert_eq!(first(&forged), (DivergenceKind::Inserted, 9));

    let mut swapped = chain(5);
    swapped.swap(1, 2);
    assert_eq!(first(&swapped), (DivergenceKind::Reordered, 3));
}

#[test]
fn checkpoints_catch_a_rewritten_or_truncated_chain_and_a_forged_signature() {
    let dir = tempfile::tempdir().unwrap();
    let key = AuditKey::load_or_create(&dir.path().join("k")).unwrap();
    let lines = chain(5);
    let hash_at = |i: usize| parse_hash(lines[i]["hash"].as_str().unwrap()).unwrap();
    let at_four = key.sign("events", 4, 4, &hash_at(3), "t".to_owned());
    let report = check(&lines, Some(key.public_key()), vec![at_four.clone()]);
    assert_eq!((report.divergence, report.checkpoints_verified), (None, 1));

    let truncated = check(&lines[..3], Some(key.public_key()), vec![at_four.clone()]);
    assert_eq!(truncated.divergence.unwrap().kind, DivergenceKind::Truncated);

    let wrong = key.sign("events", 4, 4, &hash_at(2), "t".to_owned());
    assert_eq!(
        check(&lines, Some(key.public_key()), vec![wrong]).divergence.unwrap().kind,
        DivergenceKind::CheckpointMismatch
    );

    let other = AuditKey::load_or_create(&dir.path().join("other")).unwrap();
    let forged = other.sign("events", 4, 4, &hash_at(3), "t".to_owned());
    let refused = ChainVerifier::new(Some(key.public_key()), vec![forged.clone()]).err().unwrap();
    assert_eq!(refused.kind, DivergenceKind::BadSignature);

    let mut with_line = lines.clone();
    with_line.insert(4, forged.to_line());
    assert_eq!(
        check(&with_line, Some(key.public_key()), Vec::new()).divergence.unwrap().kind,
        DivergenceKind::BadSignature
    );
    let mut with_good_line = lines.clone();
    with_good_line.insert(4, at_four.to_line());
    assert_eq!(check(&with_good_line, Some(key.public_key()), Vec::new()).checkpoints_verified, 1);
}

#[test]
fn a_line_reformatted_by_another_tool_still_verifies_and_an_edited_one_does_not() {
    let lines = chain(2);
    let mut scratch = Vec::new();
    let intact = |text: &str, scratch: &mut Vec<u8>| match summarize(1, text, scratch).unwrap() {
        LineSummary::Event(event) => event.seal.unwrap().intact,
        LineSummary::Checkpoint(_) => panic!("an event"),
    };
    // As the exporter writes it (the fast path), and pretty-printed with its keys in
    // another order (the full check).
    assert!(intact(&serde_json::to_string(&lines[1]).unwrap(), &mut scratch));
    let reordered = format!(
        "{{ \"hash\": {}, \"payload\": {{ \"n\" : 2 }}, \"prev_hash\": {}, \"position\": 2 }}",
        lines[1]["hash"], lines[1]["prev_hash"]
    );
    assert!(intact(&reordered, &mut scratch));
    assert!(intact(&reordered.replace("\"n\" : 2", "\"n\": 2.0e0").replace("2.0e0", "2"), &mut scratch));
    assert!(!intact(&reordered.replace("\"n\" : 2", "\"n\": 3"), &mut scratch));
}
