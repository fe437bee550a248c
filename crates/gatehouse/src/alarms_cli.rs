//! `gatehouse alarms [list|history]`: alarm states and their changes from the admin API.

use anyhow::bail;
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::admin_client::call;
use crate::{AlarmsCommand, Output};

pub(crate) async fn run(command: AlarmsCommand, base: &str, token: &str) -> anyhow::Result<()> {
    let (path, output) = match &command {
        AlarmsCommand::List { output } => ("/admin/alarms".to_owned(), *output),
        AlarmsCommand::History {
            alarm,
            since,
            output,
        } => {
            let mut path = format!("/admin/alarms/history?since={}", encode(since));
            if let Some(alarm) = alarm {
                path.push_str(&format!("&alarm={}", encode(alarm)));
            }
            (path, *output)
        }
    };
    let (status, body) = call(Method::GET, base, &path, token).await?;
    if status != 200 {
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
    }
    Ok(())
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or("-")
}

fn print_states(body: &Value) {
    let alarms = body["alarms"].as_array().cloned().unwrap_or_default();
    if alarms.is_empty() {
        println!("no alarms configured");
        return;
    }
    println!("{:<24} {:<18} {:<22} reason", "alarm", "state", "since");
    for alarm in &alarms {
        println!(
            "{:<24} {:<18} {:<22} {}",
            text(alarm, "name"),
            text(alarm, "state"),
            text(alarm, "since"),
            text(alarm, "reason")
        );
    }
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
