//! Where the fields of an event come from: the system fields `@timestamp`, `@message` and `@log`,
//! and the keys of a JSON message (see `json.rs`). A plan lists the fields a query reads and the
//! row slot each goes to; `Sources` fills those slots for one event.

use std::borrow::Cow;

use crate::EventRef;
use crate::json::JsonFields;
use crate::value::Val;

/// The system fields; any other name is looked up in the JSON message.
pub(crate) const TIMESTAMP: &str = "@timestamp";
pub(crate) const MESSAGE: &str = "@message";
pub(crate) const LOG: &str = "@log";

#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    timestamp: Vec<usize>,
    message: Vec<usize>,
    log: Vec<usize>,
    json: JsonFields,
    json_slots: Vec<usize>,
    /// Field names in the order they were first read.
    names: Vec<String>,
}

impl Sources {
    /// Reads field `name` into `slot`.
    pub fn add(&mut self, name: &str, slot: usize) {
        match name {
            TIMESTAMP => self.timestamp.push(slot),
            MESSAGE => self.message.push(slot),
            LOG | "@logGroup" => self.log.push(slot),
            _ => {
                self.json.add(name, slot);
                self.json_slots.push(slot);
            }
        }
        if !self.names.iter().any(|n| n == name) {
            self.names.push(name.to_owned());
        }
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn reads_json(&self) -> bool {
        !self.json.is_empty()
    }

    /// Fills the system fields; cheap, done for every event.
    pub fn fill_system<'a>(&self, event: &EventRef<'a>, row: &mut [Val<'a>]) {
        for &s in &self.timestamp {
            row[s] = Val::Time(event.timestamp_ms);
        }
        for &s in &self.message {
            row[s] = Val::Str(Cow::Borrowed(event.message));
        }
        for &s in &self.log {
            row[s] = Val::Str(Cow::Borrowed(event.group));
        }
    }

    /// Fills the JSON fields; a malformed message leaves them all missing.
    pub fn fill_json<'a>(&self, event: &EventRef<'a>, row: &mut [Val<'a>]) {
        if self.json.extract(event.message, row).is_err() {
            for &s in &self.json_slots {
                row[s] = Val::Null;
            }
        }
    }

    pub fn fill<'a>(&self, event: &EventRef<'a>, row: &mut [Val<'a>]) {
        self.fill_system(event, row);
        if self.reads_json() {
            self.fill_json(event, row);
        }
    }
}
