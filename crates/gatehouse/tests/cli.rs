//! The command line: validate, version, help.

#![allow(clippy::unwrap_used)] // test helpers panic on purpose

mod support;

use support::run;

fn examples_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

#[test]
fn validate_prints_a_summary_for_every_example() {
    let env = [
        ("GATEHOUSE_ADMIN_TOKEN", "an-example-token-0123456789"),
        ("UPSTREAM_URL", "http://127.0.0.1:9000"),
    ];
    for example in ["quickstart.yaml", "http-proxy.yaml", "websocket.yaml"] {
        let path = examples_dir().join(example);
        let (code, stdout, stderr) = run(&["validate", path.to_str().unwrap()], &env);
        assert_eq!(code, 0, "{example}: {stderr}");
        assert!(stdout.contains(": ok"), "{example}: {stdout}");
        assert!(stdout.contains("route"), "{example}: {stdout}");
    }
}

#[test]
fn validate_reports_file_line_column_and_field_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "apis:\n  - name: pets\n    stages: [{ name: prod }]\n    routes:\n      - path: /pets\n        integraton:\n          type: mock\n",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["validate", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("broken.yaml:6:9"), "{stderr}");
    assert!(stderr.contains("apis[0].routes[0]"), "{stderr}");
    assert!(stderr.contains("integraton"), "{stderr}");
}

#[test]
fn validate_names_a_missing_environment_variable() {
    let path = examples_dir().join("quickstart.yaml");
    let (code, _, stderr) = run(&["validate", path.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("GATEHOUSE_ADMIN_TOKEN"), "{stderr}");
}

#[test]
fn validate_of_a_missing_file_fails_clearly() {
    let (code, _, stderr) = run(&["validate", "/nonexistent/gateway.yaml"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("/nonexistent/gateway.yaml"), "{stderr}");
}

#[test]
fn version_and_help() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("gatehouse "), "{stdout}");
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for command in ["serve", "validate", "demo", "reload", "status"] {
        assert!(stdout.contains(command), "help lacks {command}: {stdout}");
    }
}
