//! `gatehouse alarms [list|history|get|put|delete]`: alarm states, their changes and the
//! alarms created through the admin API.
//!
//! `put` reads a YAML or JSON file with the fields of a config file's alarm and checks it
//! locally with the config's own rules first, so a mistake is reported with the file's line and
//! column before anything is sent; `${NAME}` in it is substituted from the CLI's environment,
//! as in a config file.

use std::path::Path;

use anyhow::{Context, bail};
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::admin_client::call_with_body;
use crate::{AlarmsCommand, Output};

pub(crate) async fn run(command: AlarmsCommand, base: &str, token: &str) -> anyhow::Result<()> {
    let (method, path, body, output) = match &command {
        AlarmsCommand::List { output } => (Method::GET, "/admin/alarms".to_owned(), None, *output),
        AlarmsCommand::History {
            alarm,
            since,
            output,
        } => {
            let mut path = format!("/admin/alarms/history?since={}", encode(since));
            if let Some(alarm) = alarm {
                path.push_str(&format!("&alarm={}", encode(alarm)));
            }
            (Method::GET, path, None, *output)
        }
        AlarmsCommand::Get { name, output } => (Method::GET, alarm_path(name), None, *output),
        AlarmsCommand::Put { name, file } => {
            let body = read_alarm(name, file)?;
            (Method::PUT, alarm_path(name), Some(body), Output::Table)
        }
        AlarmsCommand::Delete { name } => (Method::DELETE, alarm_path(name), None, Output::Table),
    };
    let (status, body) = call_with_body(method, base, &path, token, body.as_ref()).await?;
    if !(200..300).contains(&status) {
        if let Some(errors) = body["errors"].as_array() {
            for error in errors {
                eprintln!("{}", error.as_str().unwrap_or_default());
            }
        }
        let message = body["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        bail!("the admin API answered HTTP {status}: {message}");
    }
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    match command {
        AlarmsCommand::List { .. } => print_states(&body),
        AlarmsCommand::History { .. } => print_history(&body),
        AlarmsCommand::Get { .. } => print_alarm(&body)?,
        AlarmsCommand::Put { name, .. } => {
            let verb = if status == 201 { "created" } else { "replaced" };
            println!("{verb} alarm '{name}'; it is evaluated now (gatehouse alarms)");
        }
        AlarmsCommand::Delete { name } => println!("deleted alarm '{name}'; its history stays"),
    }
    Ok(())
}

fn alarm_path(name: &str) -> String {
    format!("/admin/alarms/{}", encode(name))
}

/// Reads and checks the alarm file, returning the document to send.
fn read_alarm(name: &str, file: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the alarm file {}", file.display()))?;
    let env = |key: &str| std::env::var(key).ok();
    match gatehouse_config::alarm_from_text(name, &text, &file.display().to_string(), &env) {
        Ok((_, document)) => Ok(document),
        Err(errors) => bail!("{errors}\nthe alarm was not sent"),
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("-")
}

fn print_states(body: &Value) {
    let alarms = body["alarms"].as_array().cloned().unwrap_or_default();
    let shadowed = body["shadowed"].as_array().cloned().unwrap_or_default();
    if alarms.is_empty() && shadowed.is_empty() {
        println!("no alarms configured");
        return;
    }
    println!(
        "{:<24} {:<7} {:<18} {:<22} reason",
        "alarm", "source", "state", "since"
    );
    for alarm in &alarms {
        println!(
            "{:<24} {:<7} {:<18} {:<22} {}",
            text(alarm, "name"),
            text(alarm, "source"),
            text(alarm, "state"),
            text(alarm, "since"),
            text(alarm, "reason")
        );
    }
    for alarm in &shadowed {
        println!(
            "{:<24} {:<7} {:<18} {:<22} {}",
            text(alarm, "name"),
            text(alarm, "source"),
            "SHADOWED",
            "-",
            text(alarm, "reason")
        );
    }
}

/// The definition as YAML, ready to be edited and put back, under a comment with the state.
fn print_alarm(body: &Value) -> anyhow::Result<()> {
    println!(
        "# {} alarm, {} since {}: {}",
        text(body, "source"),
        text(body, "state"),
        text(body, "since"),
        text(body, "reason")
    );
    if let Some(note) = body["shadows"].as_str() {
        println!("# {note}");
    }
    if body["definition"]["webhook"]["headers"]
        .as_object()
        .is_some_and(|headers| !headers.is_empty())
    {
        println!("# webhook header values are not shown; give them again to put this back");
    }
    let yaml =
        serde_saphyr::to_string(&body["definition"]).context("cannot print the alarm as YAML")?;
    print!("{yaml}");
    Ok(())
}

fn print_history(body: &Value) {
    let changes = body["history"].as_array().cloned().unwrap_or_default();
    if changes.is_empty() {
        println!("no state changes in the range");
        return;
    }
    println!(
        "{:<22} {:<24} {:<36} reason",
        "time (UTC)", "alarm", "change"
    );
    for change in &changes {
        let transition = format!(
            "{} → {}",
            text(change, "oldState"),
            text(change, "newState")
        );
        println!(
            "{:<22} {:<24} {:<36} {}",
            text(change, "timestamp"),
            text(change, "alarm"),
            transition,
            text(change, "reason")
        );
    }
}
