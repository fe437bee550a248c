use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::routing::PathParams;
use crate::template::{ContextVar, Template, TemplateError, TemplateSource};

fn context(var: ContextVar) -> Cow<'static, str> {
    Cow::Borrowed(match var {
        ContextVar::RequestId => "req-1",
        ContextVar::Stage => "prod",
        ContextVar::SourceIp => "10.1.2.3",
        _ => "?",
    })
}

fn vars() -> BTreeMap<String, String> {
    [
        ("backend", "http://b:9000"),
        ("env", "production"),
        ("weird", "{id}"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn compile(text: &str) -> Template {
    let source = TemplateSource::parse(text, &["id", "proxy"]).expect("template parses");
    source.bind(&vars()).expect("stage variables resolve")
}

#[test]
fn render_table() {
    let params: PathParams<'_> = [("id", "42"), ("proxy", "a/b%20c")].into_iter().collect();
    let cases: &[(&str, &str, bool)] = &[
        ("plain", "plain", true),
        ("", "", true),
        (
            "${stageVariables.backend}/pets/{id}",
            "http://b:9000/pets/42",
            false,
        ),
        (
            "${stageVariables.backend}/{proxy}",
            "http://b:9000/a/b%20c",
            false,
        ),
        ("${stageVariables.env}", "production", true),
        ("${stageVariables.weird}", "{id}", true),
        ("{{id}} is {id}", "{id} is 42", false),
        (
            "{\"hello\": \"{id}\", \"rid\": \"${context.requestId}\"}",
            "{\"hello\": \"42\", \"rid\": \"req-1\"}",
            false,
        ),
        ("{\"a\":{\"b\":1}}", "{\"a\":{\"b\":1}}", true),
        (
            "${context.stage}/${context.sourceIp}",
            "prod/10.1.2.3",
            false,
        ),
        ("${other} ${ } {", "${other} ${ } {", true),
        ("{not a param}", "{not a param}", true),
    ];
    for (text, expected, is_static) in cases {
        let template = compile(text);
        assert_eq!(
            template.render(&params, &context),
            *expected,
            "template {text:?}"
        );
        assert_eq!(template.is_static(), *is_static, "is_static of {text:?}");
        assert_eq!(
            template.as_static().is_some(),
            *is_static,
            "as_static of {text:?}"
        );
        if *is_static {
            assert_eq!(template.as_static(), Some(*expected));
        }
    }
}

#[test]
fn template_error_table() {
    let cases: &[(&str, &[&str])] = &[
        (
            "{nope}",
            &["unknown path parameter '{nope}' (the route's path parameters: {id}, {proxy})"],
        ),
        (
            "{proxy+}",
            &["write the greedy parameter as '{proxy}' in templates, without '+'"],
        ),
        (
            "${context.reqId}",
            &[
                "unknown context variable '${context.reqId}', expected one of requestId, stage, api, apiVersion, httpMethod, path, resourcePath, sourceIp, requestTimeEpoch",
            ],
        ),
        (
            "${stageVariables.}",
            &["invalid stage variable reference '${stageVariables.}'"],
        ),
        (
            "{a}{b}",
            &[
                "unknown path parameter '{a}' (the route's path parameters: {id}, {proxy})",
                "unknown path parameter '{b}' (the route's path parameters: {id}, {proxy})",
            ],
        ),
    ];
    for (text, expected) in cases {
        let got: Vec<String> = TemplateSource::parse(text, &["id", "proxy"])
            .err()
            .unwrap_or_default()
            .iter()
            .map(TemplateError::to_string)
            .collect();
        assert_eq!(got, *expected, "template {text:?}");
    }
    let no_params = TemplateSource::parse("{id}", &[]).expect_err("no params");
    assert_eq!(
        no_params[0].to_string(),
        "unknown path parameter '{id}' (the route has no path parameters)"
    );
}

#[test]
fn missing_stage_variables_are_listed() {
    let source = TemplateSource::parse(
        "${stageVariables.a}${stageVariables.env}${stageVariables.b}",
        &[],
    )
    .expect("parses");
    assert_eq!(
        source.bind(&vars()),
        Err(vec!["a".to_owned(), "b".to_owned()])
    );
}

#[test]
fn display_shows_source_syntax_with_stage_variables_applied() {
    let template = compile("${stageVariables.backend}/{id}?r=${context.requestId}");
    assert_eq!(
        template.to_string(),
        "http://b:9000/{id}?r=${context.requestId}"
    );
    assert_eq!(
        template.context_vars().collect::<Vec<_>>(),
        vec![ContextVar::RequestId]
    );
}

#[test]
fn context_var_names_round_trip() {
    for var in ContextVar::ALL {
        assert_eq!(ContextVar::from_name(var.name()), Some(var));
    }
}
