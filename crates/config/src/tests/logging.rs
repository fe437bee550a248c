//! The logging sections: access-log inheritance and destinations, execution logs, log groups and
//! metric filters, and the errors (with positions) for each.

use std::path::PathBuf;
use std::time::Duration;

use gatehouse_telemetry::access_log::{Rotation, UNROUTED_GROUP};

use super::{errors, loaded};
use crate::{ExecutionLogLevel, MetricValue, glob_match};

const DAY: u64 = 86_400;

/// Two stages of one api; `prod` sets `{prod}`, `dev` sets nothing.
fn stages(top: &str, prod: &str) -> String {
    format!(
        "{top}apis:
  - name: pets
    stages:
      - name: prod
{prod}      - name: dev
    routes:
      - path: /x
        integration: {{ type: mock }}
"
    )
}

#[test]
fn stages_inherit_the_top_level_access_log_field_by_field() {
    let yaml = stages(
        "access_log:
  format: clf
  destinations: [stdout, { file: { path: logs/all.log, max_size: 100MB, rotate_every: 1d, keep: 3 } }]
",
        "        access_log:
          format: '{\"id\":\"$context.requestId\"}'
",
    );
    let settings = loaded(&yaml).settings;
    let top = &settings.access_log;
    assert!(top.enabled);
    assert_eq!(top.format.preset_name(), Some("clf"));
    assert!(top.destinations.stdout && !top.destinations.store);
    assert_eq!(
        top.destinations.files[0].path,
        PathBuf::from("/etc/gatehouse/logs/all.log")
    );
    assert_eq!(
        top.destinations.files[0].rotation,
        Rotation {
            max_size: Some(100_000_000),
            every: Some(Duration::from_secs(DAY)),
            keep: 3
        }
    );
    let [prod, dev] = &settings.stage_logging[..] else {
        panic!("two stages: {:?}", settings.stage_logging);
    };
    assert_eq!((prod.api.as_str(), prod.stage.as_str()), ("pets", "prod"));
    assert_eq!(
        prod.access_log.format.template(),
        "{\"id\":\"$context.requestId\"}"
    );
    assert_eq!(prod.access_log.destinations, top.destinations);
    assert_eq!(dev.access_log, *top);

    let config = settings.access_log_config();
    assert_eq!(config.stages.len(), 2);
    assert!(config.default.is_some());
    assert_eq!(&*config.stages[0].stage, "prod");
}

#[test]
fn defaults_are_the_gatehouse_format_to_the_store() {
    let settings = loaded(&stages("", "")).settings;
    assert!(settings.access_log.enabled);
    assert_eq!(settings.access_log.format.preset_name(), Some("gatehouse"));
    assert!(settings.access_log.destinations.store);
    assert!(!settings.access_log.destinations.stdout);
    assert_eq!(settings.stage_logging[0].access_log, settings.access_log);
    assert_eq!(settings.execution_log.level, ExecutionLogLevel::Off);
    assert_eq!(settings.execution_log.max_body_bytes, 8192);
    assert_eq!(settings.logs.retention, Duration::from_secs(30 * DAY));
    assert_eq!(UNROUTED_GROUP, "access/_unrouted");
}

#[test]
fn a_stage_can_turn_its_access_log_on_or_off() {
    let yaml = stages(
        "access_log: { enabled: false }\n",
        "        access_log: { enabled: true, destinations: [store] }\n",
    );
    let settings = loaded(&yaml).settings;
    let config = settings.access_log_config();
    assert!(config.default.is_none(), "unrouted requests are not logged");
    assert!(config.stages[0].log.is_some(), "prod is");
    assert!(config.stages[1].log.is_none(), "dev inherits off");
}

#[test]
fn the_old_destination_form_still_loads() {
    for (yaml, stdout, files, enabled) in [
        ("access_log: { destination: stdout }\n", true, 0, true),
        (
            "access_log: { destination: file, path: a.log }\n",
            false,
            1,
            true,
        ),
        ("access_log: { destination: off }\n", false, 0, false),
        (
            "access_log: { destination: stdout, format: clf }\n",
            true,
            0,
            true,
        ),
    ] {
        let log = loaded(yaml).settings.access_log;
        assert_eq!(log.destinations.stdout, stdout, "{yaml}");
        assert!(!log.destinations.store, "{yaml}");
        assert_eq!(log.destinations.files.len(), files, "{yaml}");
        assert_eq!(log.enabled, enabled, "{yaml}");
    }
}

#[test]
fn execution_logs_inherit_and_redaction_lists_add_up() {
    let yaml = stages(
        "execution_log:
  level: error
  redact_headers: [X-Secret]
  redact_json_fields: [password]
",
        "        execution_log:
          level: info
          data_trace: true
          max_body_bytes: 1024
          redact_headers: [x-other, authorization]
          redact_json_fields: [card.number]
",
    );
    let settings = loaded(&yaml).settings;
    let headers =
        |h: &[http::HeaderName]| h.iter().map(|h| h.as_str().to_owned()).collect::<Vec<_>>();
    assert_eq!(settings.execution_log.level, ExecutionLogLevel::Error);
    assert_eq!(
        headers(&settings.execution_log.redact_headers),
        ["x-secret"]
    );
    // The credential headers are masked whatever the lists say.
    assert!(
        settings
            .execution_log
            .is_redacted_header(&http::HeaderName::from_static("authorization"))
    );
    let prod = &settings.stage_logging[0].execution_log;
    assert_eq!(prod.level, ExecutionLogLevel::Info);
    assert!(prod.data_trace);
    assert_eq!(prod.max_body_bytes, 1024);
    assert_eq!(headers(&prod.redact_headers), ["x-secret", "x-other"]);
    assert_eq!(prod.redact_json_fields, ["password", "card.number"]);
    assert_eq!(
        settings.stage_logging[1].execution_log,
        settings.execution_log
    );
}

#[test]
fn log_groups_and_metric_filters_load() {
    let yaml = "logs:
  retention_days: 7
  groups:
    'access/pets/prod': { retention_days: 90 }
    'access/*': { retention_days: 14 }
  metric_filters:
    - name: upstream-errors
      group: 'access/*'
      filter: 'status >= 500'
      metric: UpstreamErrors
    - name: latency
      group: access/pets/prod
      filter: 'status = 200'
      metric: OkLatency
      value: $responseLatency
      dimensions: { stage: $stage }
";
    let logs = loaded(yaml).settings.logs;
    assert_eq!(logs.retention, Duration::from_secs(7 * DAY));
    assert_eq!(
        logs.retention_for("access/pets/prod"),
        Duration::from_secs(90 * DAY)
    );
    assert_eq!(
        logs.retention_for("access/pets/dev"),
        Duration::from_secs(14 * DAY)
    );
    assert_eq!(
        logs.retention_for("execution/pets/dev"),
        Duration::from_secs(7 * DAY)
    );
    assert_eq!(logs.metric_filters.len(), 2);
    assert_eq!(logs.metric_filters[0].value, MetricValue::Constant(1.0));
    assert_eq!(logs.metric_filters[0].filter, "status >= 500");
    assert_eq!(
        logs.metric_filters[1].value,
        MetricValue::Field("responseLatency".into())
    );
    assert_eq!(
        logs.metric_filters[1].dimensions,
        [("stage".to_owned(), "stage".to_owned())]
    );
}

#[test]
fn glob_patterns_match_across_slashes() {
    for (pattern, name, expected) in [
        ("access/*", "access/pets/prod", true),
        ("access/*/prod", "access/pets/prod", true),
        ("access/*/prod", "access/pets/dev", false),
        ("*", "anything", true),
        ("access/pets/prod", "access/pets/prod", true),
        ("access/pets/prod", "access/pets/prod2", false),
        ("a*b*c", "abc", true),
        ("a*a", "a", false),
    ] {
        assert_eq!(glob_match(pattern, name), expected, "{pattern} vs {name}");
    }
}

/// Each case: a name, the YAML, the expected errors (`line:col: path: message`).
#[test]
fn logging_error_table() {
    let unknown_variable = unknown_variable_message();
    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("template without requestId",
            "access_log:\n  format: '$context.status'\n".to_owned(),
            vec!["2:11: access_log.format: access log format must include $context.requestId".into()]),
        ("unknown variable on a stage lists the valid ones",
            stages("", "        access_log: { format: '$context.requestId $context.statusCode' }\n"),
            vec![format!("5:31: apis[0].stages[0].access_log.format: {unknown_variable}")]),
        ("unknown preset",
            "access_log: { format: jsn }\n".to_owned(),
            vec!["1:23: access_log.format: unknown access log format 'jsn': expected one of clf, json, csv, xml, gatehouse, or a template of $context variables".into()]),
        ("destinations",
            "access_log:\n  destinations: [stdout, stdout, syslog, file, { file: { path: a.log, max_size: 10 parsecs, rotate_every: 1w, keep: 5000 } }, 3]\n".to_owned(),
            vec![
                "2:26: access_log.destinations[1]: `stdout` is listed twice".into(),
                "2:34: access_log.destinations[2]: unknown destination 'syslog', expected `store`, `stdout` or `{ file: { path: ... } }`".into(),
                "2:42: access_log.destinations[3]: a file destination needs a path: `{ file: { path: access.log } }`".into(),
                "2:81: access_log.destinations[4].file.max_size: invalid size '10 parsecs': expected a size of at least 1KiB such as 100MB, 512KiB or 1GB".into(),
                "2:107: access_log.destinations[4].file.rotate_every: invalid period '1w': expected minutes, hours or days such as 30m, 1h or 1d".into(),
                "2:117: access_log.destinations[4].file.keep: must be at most 1000".into(),
                "2:127: access_log.destinations[5]: not a destination; expected `store`, `stdout` or `{ file: { path: ... } }`".into(),
            ]),
        ("empty destinations and unknown file field",
            stages("access_log: { destinations: [] }\n", "        access_log: { destinations: [{ file: { path: a.log, size: 1 } }] }\n"),
            vec![
                "1:29: access_log.destinations: at least one destination is required; use `enabled: false` to turn the access log off".into(),
                "6:61: apis[0].stages[0].access_log.destinations[0].file.size: unknown field `size`, expected one of `path`, `max_size`, `rotate_every`, `keep`".into(),
            ]),
        ("one file, two rotations",
            stages("access_log: { destinations: [{ file: { path: a.log, keep: 2 } }] }\n", "        access_log: { destinations: [{ file: a.log }] }\n"),
            vec!["6:46: apis[0].stages[0].access_log.destinations[0].file: file '/etc/gatehouse/a.log' is also written by access_log.destinations[0].file with a different rotation; give every use of a file the same max_size, rotate_every and keep".into()]),
        ("old and new forms mixed, old form only at the top",
            stages("access_log: { destination: stdout, destinations: [store] }\n", "        access_log: { destination: stdout }\n"),
            vec![
                "1:28: access_log.destination: `destination` is the old single-destination form; use `destinations` (a list) and `enabled` instead of mixing them".into(),
                "6:23: apis[0].stages[0].access_log.destination: unknown field `destination`, expected one of `enabled`, `format`, `destinations`".into(),
            ]),
        ("execution log",
            "execution_log: { level: debug }\n".to_owned(),
            vec!["1:25: execution_log.level: unknown variant `debug`, expected one of `off`, `error`, `info`".into()]),
        ("execution log values",
            stages("", "        execution_log: { max_body_bytes: 0, redact_headers: ['bad header'], redact_json_fields: [''] }\n"),
            vec![
                "5:42: apis[0].stages[0].execution_log.max_body_bytes: must be from 1 to 1048576".into(),
                "5:62: apis[0].stages[0].execution_log.redact_headers[0]: invalid header name 'bad header'".into(),
                "5:98: apis[0].stages[0].execution_log.redact_json_fields[0]: must not be empty".into(),
            ]),
        ("logs section",
            "logs:\n  retention_days: 0\n  groups:\n    'access pets': { retention_days: 0 }\n  metric_filters:\n    - { name: e, group: 'access/*', filter: ' ', metric: 'Bad Name', value: many, dimensions: { Stage: stage } }\n    - { name: e, group: '', filter: x, metric: M }\n".to_owned(),
            vec![
                "2:19: logs.retention_days: must be at least 1 day".into(),
                "4:5: logs.groups.access pets: a log group is a name such as access/petstore/prod, using letters, digits and '_', '-', '.', '/', with '*' as a wildcard".into(),
                "4:38: logs.groups.access pets.retention_days: must be at least 1 day".into(),
                "6:45: logs.metric_filters[0].filter: must not be empty (e.g. 'status >= 500')".into(),
                "6:58: logs.metric_filters[0].metric: must be 1 to 255 letters, digits, '_', '-' and '.'".into(),
                "6:77: logs.metric_filters[0].value: 'many' is neither a number nor a field reference such as $responseLatency".into(),
                "6:97: logs.metric_filters[0].dimensions.Stage: unknown dimension 'Stage'; metric filters publish the dimensions api, stage, route, method".into(),
                "6:104: logs.metric_filters[0].dimensions.Stage: 'stage' must be a field reference such as $stage (dimension values come from the event)".into(),
                "7:15: logs.metric_filters[1].name: metric filter 'e' is already defined at logs.metric_filters[0]".into(),
                "7:25: logs.metric_filters[1].group: must be a log group name or pattern such as access/* or access/petstore/prod".into(),
                "7:37: logs.metric_filters[1].filter: invalid filter expression: expected a comparison (=, !=, <, <=, >, >=, in, like, =~), found the end of the query at column 2".into(),
            ]),
    ];
    let mut mismatches = Vec::new();
    for (name, input, expected) in cases {
        let got = errors(&input);
        if got != expected {
            mismatches.push(format!(
                "case: {name}\n  expected: {expected:#?}\n  got: {got:#?}"
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

fn unknown_variable_message() -> String {
    gatehouse_telemetry::access_log::FormatError::UnknownVariable("statusCode".into()).to_string()
}
