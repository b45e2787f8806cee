//! Rules for tool lists and URLs (names: `crate::names`), checked before anything is stored. Each check returns
//! a message naming the offending values, for a 422.

use serde_json::Value;

use crate::names::{ToolName, MAX_TOOL_NAME_CHARS};

/// Why text with a NUL character is refused: PostgreSQL stores none, in `text` or `jsonb`.
pub const NUL_REFUSED: &str = "text must not contain NUL characters (\\u0000): they cannot be stored";

/// Whether any string of `value`, or any key of its objects, contains a NUL character.
pub fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(map) => map.iter().any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The list without duplicates (first occurrence kept, order preserved), or a message
/// naming every invalid tool name in `field`.
pub fn normalize_tool_list(field: &str, tools: Vec<String>) -> Result<Vec<ToolName>, String> {
    let invalid: Vec<&String> = tools.iter().filter(|tool| ToolName::parse(tool).is_none()).collect();
    if !invalid.is_empty() {
        return Err(format!(
            "{field} has invalid tool names {invalid:?}: a tool name is 1 to {MAX_TOOL_NAME_CHARS} characters without whitespace"
        ));
    }
    let mut unique: Vec<ToolName> = Vec::with_capacity(tools.len());
    for tool in tools.iter().filter_map(|tool| ToolName::parse(tool)) {
        if !unique.contains(&tool) {
            unique.push(tool);
        }
    }
    Ok(unique)
}

/// `approval_required_tools` must be a subset of `allowed_tools`: gating a tool the agent
/// may not call at all means nothing. The message names the offenders.
pub fn check_approval_subset(allowed_tools: &[ToolName], approval_required_tools: &[ToolName]) -> Result<(), String> {
    let offenders: Vec<&str> =
        approval_required_tools.iter().filter(|tool| !allowed_tools.contains(tool)).map(ToolName::as_str).collect();
    if offenders.is_empty() {
        Ok(())
    } else {
        Err(format!("approval_required_tools must be a subset of allowed_tools; not allowed: {offenders:?}"))
    }
}

/// Longest URL accepted, in characters.
pub const MAX_URL_CHARS: usize = 2048;

/// An `http` or `https` URL with a host and without a user name or password (a URL is
/// shown back by the API and quoted in client errors; credentials have other places).
/// Returns the URL as given, or a message naming `field`.
pub fn check_http_url(field: &str, raw: &str) -> Result<String, String> {
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(format!("{field} is longer than {MAX_URL_CHARS} characters"));
    }
    let url = reqwest::Url::parse(raw).map_err(|error| format!("{field} is not a valid URL ({error})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("{field} must be an http or https URL, not {}:", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("{field} must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{field} must not contain a user name or password"));
    }
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lists_are_deduplicated_in_order_and_offenders_named() {
        let tools = vec!["b".to_owned(), "a".to_owned(), "b".to_owned()];
        let names: Vec<String> =
            normalize_tool_list("allowed_tools", tools).unwrap().iter().map(ToString::to_string).collect();
        assert_eq!(names, ["b", "a"]);
        let error = normalize_tool_list("allowed_tools", vec!["ok".into(), "".into(), "a b".into()]).unwrap_err();
        assert!(error.contains(r#"["", "a b"]"#), "{error}");
        let tool = |name: &str| ToolName::parse(name).unwrap();
        let error = check_approval_subset(&[tool("a")], &[tool("a"), tool("z")]).unwrap_err();
        assert!(error.contains(r#"["z"]"#), "{error}");
    }

    #[test]
    fn http_urls_need_a_host_and_no_credentials() {
        assert!(check_http_url("u", "https://am.example:9093/prefix").is_ok());
        assert!(check_http_url("u", "ftp://am.example").unwrap_err().contains("http or https"));
        assert!(check_http_url("u", "not a url").unwrap_err().contains("u is not a valid URL"));
        assert!(check_http_url("u", "http://").is_err());
        assert!(check_http_url("u", "https://user:pw@am.example").unwrap_err().contains("user name or password"));
        assert!(check_http_url("u", &format!("https://a.example/{}", "x".repeat(MAX_URL_CHARS))).is_err());
    }
}
