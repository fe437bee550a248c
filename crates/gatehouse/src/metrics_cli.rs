//! `gatehouse metrics list|query`: the metrics query API from the terminal, as a table with a
//! sparkline, a bare sparkline, or JSON.

use anyhow::bail;
use http::Method;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use crate::admin_client::call;
use crate::{MetricsCommand, Output};

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

pub(crate) async fn run(command: MetricsCommand, base: &str, token: &str) -> anyhow::Result<()> {
    match command {
        MetricsCommand::List { since, output } => {
            let path = format!("/admin/metrics?since={}", encode(&since));
            let body = get(base, &path, token).await?;
            if output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&body)?);
                return Ok(());
            }
            let series = body["series"].as_array().cloned().unwrap_or_default();
            if series.is_empty() {
                println!("no metrics with data since {since} ago");
            }
            for entry in series {
                println!(
                    "{:<20} {}",
                    entry["metric"].as_str().unwrap_or("?"),
                    dims_text(&entry["dimensions"])
                );
            }
            Ok(())
        }
        MetricsCommand::Query {
            metric,
            api,
            stage,
            route,
            method,
            stat,
            period,
            since,
            start,
            end,
            output,
        } => {
            let mut path = format!(
                "/admin/metrics/query?metric={}&period={period}",
                encode(&metric)
            );
            for (name, value) in [
                ("api", &api),
                ("stage", &stage),
                ("route", &route),
                ("method", &method),
                ("stat", &stat),
                ("start", &start),
                ("end", &end),
            ] {
                if let Some(value) = value {
                    path.push_str(&format!("&{name}={}", encode(value)));
                }
            }
            if start.is_none() {
                path.push_str(&format!("&since={}", encode(&since)));
            }
            let body = get(base, &path, token).await?;
            print_series(&body, output)
        }
    }
}

fn encode(value: &str) -> String {
    utf8_percent_encode(value, NON_ALPHANUMERIC).to_string()
}

async fn get(base: &str, path: &str, token: &str) -> anyhow::Result<Value> {
    let (status, body) = call(Method::GET, base, path, token).await?;
    if status != 200 {
        let message = body["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        bail!("the admin API answered HTTP {status}: {message}");
    }
    Ok(body)
}

fn dims_text(dims: &Value) -> String {
    let Some(map) = dims.as_object().filter(|m| !m.is_empty()) else {
        return "(all traffic)".into();
    };
    map.iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.as_str().map_or_else(|| v.to_string(), str::to_owned)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A sparkline of the values, scaled between their minimum and maximum.
pub(crate) fn sparkline(values: &[f64]) -> String {
    let (min, max) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(*v), hi.max(*v))
        });
    values
        .iter()
        .map(|v| {
            if max <= min {
                return BARS[0];
            }
            let index = ((v - min) / (max - min) * (BARS.len() - 1) as f64).round() as usize;
            BARS[index.min(BARS.len() - 1)]
        })
        .collect()
}

fn print_series(body: &Value, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(body)?);
        return Ok(());
    }
    let points = body["datapoints"].as_array().cloned().unwrap_or_default();
    let values: Vec<f64> = points.iter().filter_map(|p| p["value"].as_f64()).collect();
    let title = format!(
        "{} {} per {} s, {}",
        body["metric"].as_str().unwrap_or("?"),
        body["statistic"].as_str().unwrap_or("?"),
        body["period"],
        dims_text(&body["dimensions"]),
    );
    if output == Output::Spark {
        println!("{}", sparkline(&values));
        return Ok(());
    }
    println!("{title}");
    if points.is_empty() {
        println!("no data points in the range");
        return Ok(());
    }
    let unit = body["unit"].as_str().unwrap_or("");
    println!(
        "{:<25} {:>14} {:>12}",
        "time (UTC)",
        format!("value {unit}").trim(),
        "samples"
    );
    for point in &points {
        let value = point["value"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), format_value);
        println!(
            "{:<25} {:>14} {:>12}",
            point["timestamp"].as_str().unwrap_or("?"),
            value,
            point["sampleCount"].as_u64().unwrap_or(0)
        );
    }
    println!("{}", sparkline(&values));
    Ok(())
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparkline_scales_between_min_and_max() {
        assert_eq!(
            sparkline(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
            "▁▂▃▄▅▆▇█"
        );
        assert_eq!(sparkline(&[5.0, 5.0]), "▁▁");
        assert_eq!(sparkline(&[]), "");
    }
}
