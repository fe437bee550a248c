use crate::env::{EnvError, substitute};

use super::test_env;

#[test]
fn substitution_table() {
    let cases: &[(&str, Result<&str, &[&str]>)] = &[
        ("plain text", Ok("plain text")),
        ("${PORT}", Ok("8181")),
        ("127.0.0.1:${PORT}", Ok("127.0.0.1:8181")),
        ("${MISSING:-8080}", Ok("8080")),
        ("${PORT:-8080}", Ok("8181")),
        ("${MISSING:-}", Ok("")),
        ("${EMPTY:-fallback}", Ok("fallback")),
        ("${EMPTY}", Ok("")),
        ("$${PORT}", Ok("${PORT}")),
        ("a $$ b $ c", Ok("a $$ b $ c")),
        (
            "${stageVariables.backend}/x",
            Ok("${stageVariables.backend}/x"),
        ),
        (
            "${context.requestId}-${PORT}",
            Ok("${context.requestId}-8181"),
        ),
        ("${1BAD}", Ok("${1BAD}")),
        ("${unterminated", Ok("${unterminated")),
        ("${A:-x}${B:-y}", Ok("xy")),
        ("${MISSING}", Err(&["MISSING"])),
        ("${ONE}-${TWO}", Err(&["ONE", "TWO"])),
    ];
    for (input, expected) in cases {
        let got = substitute(input, &test_env).map(|s| s.into_owned());
        let expected = expected.map(str::to_owned).map_err(|names| {
            names
                .iter()
                .map(|n| EnvError::Unset {
                    name: (*n).to_owned(),
                })
                .collect::<Vec<_>>()
        });
        assert_eq!(got, expected, "input {input:?}");
    }
}

#[test]
fn unset_error_suggests_a_default() {
    let error = EnvError::Unset {
        name: "TOKEN".to_owned(),
    };
    assert_eq!(
        error.to_string(),
        "environment variable 'TOKEN' is not set; set it, or give a default with '${TOKEN:-default}'"
    );
}

#[test]
fn substitution_happens_before_typing_plain_scalars() {
    let env = |name: &str| match name {
        "N" => Some("42".to_owned()),
        "B" => Some("true".to_owned()),
        _ => None,
    };
    let root = crate::yaml::parse(
        "a: ${N}\nb: ${B}\nc: '${N}'\nd: ${X:-8080}\ne: ${X:-false}\nf: ${X:-}\n",
    )
    .expect("valid yaml");
    let (index, _) = crate::yaml::PositionIndex::build(&root);
    let mut diags = crate::error::Diagnostics::new("t.yaml", &index);
    let value = crate::yaml::to_value(&root, "", &env, &mut diags);
    assert!(!diags.has_errors());
    assert_eq!(
        value,
        serde_json::json!({"a": 42, "b": true, "c": "42", "d": 8080, "e": false, "f": null})
    );
}

#[test]
fn core_schema_resolution_table() {
    use serde_json::{Value, json};
    let cases: &[(&str, Value)] = &[
        ("~", Value::Null),
        ("null", Value::Null),
        ("", Value::Null),
        ("True", json!(true)),
        ("FALSE", json!(false)),
        ("yes", json!("yes")),
        ("0", json!(0)),
        ("-17", json!(-17)),
        ("+5", json!(5)),
        ("0x1F", json!(31)),
        ("0o17", json!(15)),
        (
            "18446744073709551615",
            json!(18_446_744_073_709_551_615_u64),
        ),
        ("1.5", json!(1.5)),
        ("1e3", json!(1000.0)),
        (".5", json!(0.5)),
        (".inf", json!(".inf")),
        ("1.2.3", json!("1.2.3")),
        ("127.0.0.1:8080", json!("127.0.0.1:8080")),
        ("v1", json!("v1")),
    ];
    for (input, expected) in cases {
        assert_eq!(
            &crate::yaml::resolve_plain(input),
            expected,
            "input {input:?}"
        );
    }
}
