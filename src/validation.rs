//! Rules for tool lists and URLs (names: `crate::names`), checked before anything is stored. Each check returns
//! a message naming the offending values, for a 422.

/// Longest tool name accepted (MCP's own recommendation).
pub const MAX_TOOL_NAME_CHARS: usize = 128;

/// Tool names are chosen by upstream servers, so the rule is loose: 1 to 128 characters,
/// none of them whitespace or control characters.
fn is_tool_name(tool: &str) -> bool {
    let chars = tool.chars().count();
    (1..=MAX_TOOL_NAME_CHARS).contains(&chars) && !tool.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// The list without duplicates (first occurrence kept, order preserved), or a message
/// naming every invalid tool name in `field`.
pub fn normalize_tool_list(field: &str, tools: Vec<String>) -> Result<Vec<String>, String> {
    let invalid: Vec<&String> = tools.iter().filter(|tool| !is_tool_name(tool)).collect();
    if !invalid.is_empty() {
        return Err(format!(
            "{field} has invalid tool names {invalid:?}: a tool name is 1 to {MAX_TOOL_NAME_CHARS} characters without whitespace"
        ));
    }
    let mut unique: Vec<String> = Vec::with_capacity(tools.len());
    for tool in tools {
        if !unique.contains(&tool) {
            unique.push(tool);
        }
    }
    Ok(unique)
}

/// `approval_required_tools` must be a subset of `allowed_tools`: gating a tool the agent
/// may not call at all means nothing. The message names the offenders.
pub fn check_approval_subset(allowed_tools: &[String], approval_required_tools: &[String]) -> Result<(), String> {
    let offenders: Vec<&String> = approval_required_tools.iter().filter(|tool| !allowed_tools.contains(tool)).collect();
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
        assert_eq!(normalize_tool_list("allowed_tools", tools).unwrap(), vec!["b", "a"]);
        let error = normalize_tool_list("allowed_tools", vec!["ok".into(), "".into(), "a b".into()]).unwrap_err();
        assert!(error.contains(r#"["", "a b"]"#), "{error}");
        let error = check_approval_subset(&["a".into()], &["a".into(), "z".into()]).unwrap_err();
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
