//! Alarm definitions created through the admin API: one row per alarm, its JSON document and
//! when it was created and last replaced. Config-file alarms are not stored; the file is their
//! home.
//!
//! Writes go through the writer thread like every other write, each in its own transaction so
//! the caller learns that the definition is durable before it answers the API request. The
//! store does not interpret the document; the config crate validates it when it is read back.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::StoreError;

/// One stored alarm definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmDefinitionRecord {
    pub name: String,
    /// The alarm's JSON document.
    pub spec: String,
    /// When it was first created, in seconds since the Unix epoch.
    pub created_unix: i64,
    /// When it was last written (created or replaced).
    pub updated_unix: i64,
}

/// A change to the definitions, carried to the writer thread.
#[derive(Debug)]
pub(crate) enum DefinitionChange {
    Put {
        name: String,
        spec: String,
        now_unix: i64,
    },
    Delete {
        name: String,
    },
}

/// What a change did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DefinitionOutcome {
    /// A new definition, or a replaced one: the stored row as it is now.
    Written {
        record: AlarmDefinitionRecord,
        created: bool,
    },
    /// The definition was deleted (`true`) or there was none (`false`).
    Deleted(bool),
}

/// Applies `change` in `tx`.
pub(crate) fn apply(
    tx: &Transaction<'_>,
    change: &DefinitionChange,
) -> rusqlite::Result<DefinitionOutcome> {
    match change {
        DefinitionChange::Put {
            name,
            spec,
            now_unix,
        } => {
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT created_at FROM alarm_definitions WHERE name = ?1",
                    params![name],
                    |row| row.get(0),
                )
                .optional()?;
            tx.execute(
                "INSERT INTO alarm_definitions (name, spec, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                params![name, spec, now_unix],
            )?;
            Ok(DefinitionOutcome::Written {
                record: AlarmDefinitionRecord {
                    name: name.clone(),
                    spec: spec.clone(),
                    created_unix: existing.unwrap_or(*now_unix),
                    updated_unix: *now_unix,
                },
                created: existing.is_none(),
            })
        }
        DefinitionChange::Delete { name } => {
            let deleted = tx.execute(
                "DELETE FROM alarm_definitions WHERE name = ?1",
                params![name],
            )?;
            Ok(DefinitionOutcome::Deleted(deleted > 0))
        }
    }
}

/// Every stored definition, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<AlarmDefinitionRecord>, StoreError> {
    let what = "reading alarm definitions";
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, spec, created_at, updated_at FROM alarm_definitions ORDER BY name",
        )
        .map_err(StoreError::query(what))?;
    let rows = stmt
        .query_map([], |row| {
            Ok(AlarmDefinitionRecord {
                name: row.get(0)?,
                spec: row.get(1)?,
                created_unix: row.get(2)?,
                updated_unix: row.get(3)?,
            })
        })
        .map_err(StoreError::query(what))?;
    rows.collect::<Result<_, _>>()
        .map_err(StoreError::query(what))
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreConfig};

    use super::*;

    #[test]
    fn definitions_are_created_replaced_deleted_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let written = store
            .put_alarm_definition("quiet", "{\"v\":1}", 100)
            .unwrap();
        let first = AlarmDefinitionRecord {
            name: "quiet".into(),
            spec: "{\"v\":1}".into(),
            created_unix: 100,
            updated_unix: 100,
        };
        assert_eq!(
            written,
            DefinitionOutcome::Written {
                record: first.clone(),
                created: true
            }
        );
        let replaced = store
            .put_alarm_definition("quiet", "{\"v\":2}", 160)
            .unwrap();
        let second = AlarmDefinitionRecord {
            spec: "{\"v\":2}".into(),
            updated_unix: 160,
            ..first
        };
        assert_eq!(
            replaced,
            DefinitionOutcome::Written {
                record: second.clone(),
                created: false
            }
        );
        store.put_alarm_definition("busy", "{}", 170).unwrap();
        store.close();

        let store = Store::open(StoreConfig::new(dir.path())).unwrap();
        let names: Vec<String> = store
            .alarm_definitions()
            .unwrap()
            .into_iter()
            .map(|record| record.name)
            .collect();
        assert_eq!(names, ["busy", "quiet"]);
        assert_eq!(store.alarm_definitions().unwrap()[1], second);
        assert_eq!(
            store.delete_alarm_definition("quiet").unwrap(),
            DefinitionOutcome::Deleted(true)
        );
        assert_eq!(
            store.delete_alarm_definition("quiet").unwrap(),
            DefinitionOutcome::Deleted(false)
        );
        assert_eq!(store.alarm_definitions().unwrap().len(), 1);
    }
}
