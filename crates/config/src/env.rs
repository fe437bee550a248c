//! `${ENV}` substitution in scalar values, applied before a plain scalar's type is resolved.
//!
//! The grammar is deliberately small and shell-like: `${NAME}` and `${NAME:-default}` where `NAME`
//! matches `[A-Za-z_][A-Za-z0-9_]*`; `$${` produces a literal `${`. A `${...}` whose content is not
//! such a name — `${stageVariables.backend}`, `${context.requestId}` — is left exactly as written,
//! because those are runtime templates handled by the `template` module. As in POSIX shells and
//! Docker Compose, `:-` uses the default when the variable is unset *or* empty. Defaults are literal
//! text up to the first `}`; they do not nest. The environment is a lookup function so that loading
//! stays deterministic in tests; only `load_file` consults the process environment.

use std::borrow::Cow;

/// A problem substituting environment variables in one scalar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `${NAME}` without a default, and `NAME` is not set.
    #[error(
        "environment variable '{name}' is not set; set it, or give a default with '${{{name}:-default}}'"
    )]
    Unset {
        /// The variable's name.
        name: String,
    },
}

/// Replaces `${NAME}`, `${NAME:-default}` and `$${` in `input`.
///
/// Returns the input borrowed when it holds nothing to substitute. Every unset variable is reported,
/// not only the first.
pub fn substitute<'a>(
    input: &'a str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Cow<'a, str>, Vec<EnvError>> {
    if !input.contains("${") {
        return Ok(Cow::Borrowed(input));
    }
    let mut out = String::with_capacity(input.len());
    let mut errors = Vec::new();
    let mut rest = input;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(after) = rest.strip_prefix("${") else {
            out.push('$');
            rest = &rest[1..];
            continue;
        };
        let Some(close) = after.find('}') else {
            break;
        };
        let content = &after[..close];
        let (name, default) = match content.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (content, None),
        };
        if !is_env_name(name) {
            // A runtime template such as `${context.stage}`: keep it verbatim.
            out.push_str("${");
            rest = after;
            continue;
        }
        match (
            env(name).filter(|v| !v.is_empty() || default.is_none()),
            default,
        ) {
            (Some(value), _) => out.push_str(&value),
            (None, Some(default)) => out.push_str(default),
            (None, None) => errors.push(EnvError::Unset {
                name: name.to_owned(),
            }),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(Cow::Owned(out))
    } else {
        Err(errors)
    }
}

/// Whether `name` matches `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
