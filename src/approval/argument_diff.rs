//! What changed in a call's arguments since an earlier call of the same tool: the person
//! deciding sees "path changed" instead of comparing two JSON documents by eye.

use std::collections::BTreeSet;

use serde_json::Value;

/// How one top-level argument differs from the earlier call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgumentChange {
    Added(String),
    Removed(String),
    Changed(String),
}

impl ArgumentChange {
    pub fn name(&self) -> &str {
        match self {
            ArgumentChange::Added(name) | ArgumentChange::Removed(name) | ArgumentChange::Changed(name) => name,
        }
    }

    pub fn verb(&self) -> &'static str {
        match self {
            ArgumentChange::Added(_) => "added",
            ArgumentChange::Removed(_) => "removed",
            ArgumentChange::Changed(_) => "changed",
        }
    }
}

/// The top-level arguments added, removed or changed from `earlier` to `now`, by name.
/// Arguments that are not objects (rare: MCP arguments are an object) compare whole,
/// under the empty name.
pub fn diff(earlier: &Value, now: &Value) -> Vec<ArgumentChange> {
    let (Value::Object(earlier), Value::Object(now)) = (earlier, now) else {
        return if earlier == now { Vec::new() } else { vec![ArgumentChange::Changed(String::new())] };
    };
    let names: BTreeSet<&String> = earlier.keys().chain(now.keys()).collect();
    names
        .into_iter()
        .filter_map(|name| match (earlier.get(name), now.get(name)) {
            (None, Some(_)) => Some(ArgumentChange::Added(name.clone())),
            (Some(_), None) => Some(ArgumentChange::Removed(name.clone())),
            (Some(before), Some(after)) if before != after => Some(ArgumentChange::Changed(name.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_arguments_have_no_changes() {
        let args = json!({"path": "/a", "n": {"x": [1, 2]}});
        assert!(diff(&args, &args.clone()).is_empty());
    }

    #[test]
    fn added_removed_and_changed_keys_are_named_in_order() {
        let earlier = json!({"path": "/a", "content": "x", "mode": 1});
        let now = json!({"path": "/b", "content": "x", "append": true});
        assert_eq!(
            diff(&earlier, &now),
            vec![
                ArgumentChange::Added("append".into()),
                ArgumentChange::Removed("mode".into()),
                ArgumentChange::Changed("path".into()),
            ]
        );
    }

    #[test]
    fn a_nested_change_counts_for_its_top_level_argument() {
        let changes = diff(&json!({"n": {"x": [1, 2]}}), &json!({"n": {"x": [1, 3]}}));
        assert_eq!(changes, vec![ArgumentChange::Changed("n".into())]);
        assert_eq!(changes[0].verb(), "changed");
        assert_eq!(changes[0].name(), "n");
    }

    #[test]
    fn a_type_change_is_a_change() {
        assert_eq!(diff(&json!({"n": 1}), &json!({"n": "1"})), vec![ArgumentChange::Changed("n".into())]);
    }

    #[test]
    fn non_object_arguments_compare_whole() {
        assert!(diff(&json!([1]), &json!([1])).is_empty());
        assert_eq!(diff(&json!([1]), &json!({"a": 1})), vec![ArgumentChange::Changed(String::new())]);
    }
}
