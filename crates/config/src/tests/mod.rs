//! Unit tests, table-driven where the subject is a parser or a rule set (STYLE.md §6).

mod alarms;
mod env;
mod load_errors;
mod logging;
mod one_alarm;
mod routing;
mod templates;
mod tracing;
mod validation;

use std::path::Path;

use crate::{ConfigErrors, Loaded, load_str};

/// The environment every test sees.
pub(super) fn test_env(name: &str) -> Option<String> {
    match name {
        "GATEHOUSE_ADMIN_TOKEN" => Some("0123456789abcdef0123".to_owned()),
        "BACKEND" => Some("http://127.0.0.1:9000".to_owned()),
        "PORT" => Some("8181".to_owned()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

pub(super) fn load(yaml: &str) -> Result<Loaded, ConfigErrors> {
    load_str(yaml, "gateway.yaml", Path::new("/etc/gatehouse"), &test_env)
}

/// Loads `yaml`, expecting failure; returns each error as `line:col: path: message`.
pub(super) fn errors(yaml: &str) -> Vec<String> {
    match load(yaml) {
        Ok(_) => vec!["<loaded without errors>".to_owned()],
        Err(errors) => errors
            .errors()
            .iter()
            .map(|e| e.to_string().trim_start_matches("gateway.yaml:").to_owned())
            .collect(),
    }
}

/// Loads `yaml`, panicking with the errors on failure.
pub(super) fn loaded(yaml: &str) -> Loaded {
    match load(yaml) {
        Ok(loaded) => loaded,
        Err(errors) => panic!("expected {yaml} to load, got:\n{errors}"),
    }
}

/// A minimal valid api whose single route uses `integration` (indented for `routes[0]`).
pub(super) fn api_with_route(route: &str) -> String {
    format!(
        "apis:
  - name: demo
    stages:
      - name: prod
        variables: {{ backend: 'http://10.0.0.1:9000', env: production }}
    routes:
{route}"
    )
}
