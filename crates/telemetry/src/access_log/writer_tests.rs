//! The writer thread (per-stage formats, destinations, reload) and file rotation (by size and by
//! time, with the time passed in rather than slept for).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::bus::tests::sample;
use crate::{BusBuilder, RouteLabels};

#[derive(Clone, Default)]
struct MemorySink(Arc<Mutex<Vec<(String, i64, String)>>>);

impl LogSink for MemorySink {
    fn append(&mut self, group: &Arc<str>, timestamp_ms: i64, line: &[u8]) {
        let line = String::from_utf8(line.to_vec()).unwrap();
        self.0
            .lock()
            .unwrap()
            .push((group.to_string(), timestamp_ms, line));
    }
    fn flush(&mut self) {}
}

fn routed(api: &str, stage: &str) -> Exchange {
    let mut ex = sample();
    ex.status = 200;
    ex.route = Some(RouteLabels {
        api: Arc::from(api),
        api_version: Arc::from("v1"),
        stage: Arc::from(stage),
        resource_path: Arc::from("/pets"),
    });
    ex
}

fn log(format: &str, destinations: LogDestinations) -> StageAccessLog {
    StageAccessLog {
        format: Arc::new(AccessLogFormat::parse(format).unwrap()),
        destinations,
    }
}

fn file(path: &Path) -> LogDestinations {
    LogDestinations {
        files: vec![FileDestination {
            path: path.to_path_buf(),
            rotation: Rotation::default(),
        }],
        ..LogDestinations::default()
    }
}

fn entry(api: &str, stage: &str, log: Option<StageAccessLog>) -> StageAccessLogEntry {
    StageAccessLogEntry {
        api: Arc::from(api),
        stage: Arc::from(stage),
        log,
    }
}

#[test]
fn each_stage_gets_its_format_and_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let (shared, clf, unrouted) = (
        dir.path().join("all.log"),
        dir.path().join("nested/prod.clf"),
        dir.path().join("unrouted.log"),
    );
    let mut both = file(&shared);
    both.files.push(FileDestination {
        path: clf.clone(),
        rotation: Rotation::default(),
    });
    both.store = true;
    let config = AccessLogConfig {
        default: Some(log("gatehouse", file(&unrouted))),
        stages: vec![
            entry("pets", "prod", Some(log("clf", both))),
            entry("pets", "dev", Some(log("json", file(&shared)))),
            entry("pets", "off", None),
        ],
    };
    let sink = MemorySink::default();
    let mut builder = BusBuilder::new(64);
    let rx = builder.subscribe("access_log");
    let bus = builder.build();
    let writer = AccessLogWriter::spawn(rx, config, Some(Box::new(sink.clone()))).unwrap();
    bus.publish(routed("pets", "prod"));
    bus.publish(routed("pets", "dev"));
    bus.publish(routed("pets", "off"));
    bus.publish(sample());
    // A stage the config did not list falls back to the default format and destinations.
    bus.publish(routed("pets", "unlisted"));
    drop(bus);
    writer.join();

    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let clf_text = read(&clf);
    assert_eq!(clf_text.lines().count(), 1, "{clf_text}");
    assert!(
        clf_text
            .starts_with("127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] \"GET /x HTTP/1.1\" 200 10 ")
    );
    let all = read(&shared);
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(lines.len(), 2, "{all}");
    assert!(lines[0].starts_with("127.0.0.1 - -"));
    let dev: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(dev["stage"], "dev");
    let unrouted: Vec<serde_json::Value> = read(&unrouted)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(unrouted.len(), 2);
    assert_eq!(unrouted[0]["status"], 404);
    assert_eq!(unrouted[1]["stage"], "unlisted");
    let stored = sink.0.lock().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, "access/pets/prod");
    assert_eq!(stored[0].1, 0);
    assert!(!stored[0].2.ends_with('\n'));
}

#[test]
fn unrouted_requests_go_to_their_own_store_group() {
    let sink = MemorySink::default();
    let config = AccessLogConfig {
        default: Some(log("clf", LogDestinations::store_only())),
        stages: vec![],
    };
    let mut builder = BusBuilder::new(8);
    let rx = builder.subscribe("access_log");
    let bus = builder.build();
    let writer = AccessLogWriter::spawn(rx, config, Some(Box::new(sink.clone()))).unwrap();
    bus.publish(sample());
    bus.publish(routed("pets", "prod"));
    drop(bus);
    writer.join();
    let groups: Vec<String> = sink.0.lock().unwrap().iter().map(|e| e.0.clone()).collect();
    assert_eq!(groups, [UNROUTED_GROUP, "access/pets/prod"]);
}

#[test]
fn reconfigure_swaps_formats_while_records_flow() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let config = |format: &str| AccessLogConfig {
        default: Some(log(format, file(&path))),
        stages: vec![],
    };
    let mut builder = BusBuilder::new(64);
    let rx = builder.subscribe("access_log");
    let bus = builder.build();
    let writer = AccessLogWriter::spawn(rx, config("clf"), None).unwrap();
    bus.publish(sample());
    // Wait until the first line is written, so it is certainly rendered with the old format.
    for _ in 0..500 {
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    writer.reconfigure(config("json"));
    // The swap is picked up before the next batch; publish until a JSON line shows up.
    let mut swapped = false;
    for _ in 0..500 {
        bus.publish(sample());
        std::thread::sleep(Duration::from_millis(5));
        if std::fs::read_to_string(&path)
            .unwrap()
            .contains("{\"requestId\"")
        {
            swapped = true;
            break;
        }
    }
    drop(bus);
    assert!(swapped);
    assert_eq!(writer.write_errors(), 0);
    writer.join();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("127.0.0.1 - -"));
    // Every line is whole: CLF before the swap, JSON after it.
    for line in lines {
        assert!(
            line.starts_with("127.0.0.1 - -")
                || serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "{line}"
        );
    }
}

#[test]
fn an_unopenable_file_fails_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let config = AccessLogConfig {
        default: Some(log("clf", file(&blocker.join("a.log")))),
        stages: vec![],
    };
    let mut builder = BusBuilder::new(8);
    let error = AccessLogWriter::spawn(builder.subscribe("access_log"), config, None).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot open the access log file "),
        "{error}"
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn files_rotate_by_size_and_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let rotation = Rotation {
        max_size: Some(10),
        every: None,
        keep: 2,
    };
    let mut file = RotatingFile::open(&path, rotation, 0).unwrap();
    for batch in [
        "one\n",
        "two\n",
        "three\n",
        "four\n",
        "a batch past the limit\n",
        "six\n",
    ] {
        file.write_batch(batch.as_bytes(), 0).unwrap();
    }
    assert_eq!(names(dir.path()), ["a.log", "a.log.1", "a.log.2"]);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("a.log"), "six\n");
    assert_eq!(read("a.log.1"), "a batch past the limit\n");
    assert_eq!(read("a.log.2"), "four\n");
}

#[test]
fn files_rotate_when_a_new_period_begins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    let hour = Rotation {
        max_size: None,
        every: Some(Duration::from_secs(3600)),
        keep: 7,
    };
    let t0: i64 = 500_000 * 3600;
    let mut file = RotatingFile::open(&path, hour, t0 + 10).unwrap();
    file.write_batch(b"first hour\n", t0 + 10).unwrap();
    file.write_batch(b"still first\n", t0 + 3599).unwrap();
    file.write_batch(b"second hour\n", t0 + 3600).unwrap();
    // An hour with nothing written makes no empty file.
    file.write_batch(b"fourth hour\n", t0 + 3 * 3600 + 5)
        .unwrap();
    assert_eq!(names(dir.path()), ["a.log", "a.log.1", "a.log.2"]);
    let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
    assert_eq!(read("a.log.2"), "first hour\nstill first\n");
    assert_eq!(read("a.log.1"), "second hour\n");
    assert_eq!(read("a.log"), "fourth hour\n");
}

#[test]
fn keep_zero_discards_the_old_file_and_leftovers_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.log");
    for leftover in ["a.log.1", "a.log.2", "a.log.3"] {
        std::fs::write(dir.path().join(leftover), "old\n").unwrap();
    }
    let rotation = Rotation {
        max_size: Some(4),
        every: None,
        keep: 0,
    };
    let mut file = RotatingFile::open(&path, rotation, 0).unwrap();
    file.write_batch(b"one\n", 0).unwrap();
    file.write_batch(b"two\n", 0).unwrap();
    assert_eq!(names(dir.path()), ["a.log"]);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
}
