//! The running gateway's alarms and where each comes from: the config file, which owns its
//! alarms (read-only through the API), and the admin API, whose alarms the store keeps so that
//! they survive restarts and reloads.
//!
//! **The file wins.** An API alarm whose name a reloaded (or edited-while-stopped) config file
//! also defines is *shadowed*: it stays in the store but is not evaluated, and
//! `GET /admin/alarms` lists it under `shadowed` until it is deleted or the file's alarm goes
//! away. A reload is never refused for it: the file is what `gatehouse validate` checks, and a
//! deploy should not fail on state the file cannot see. `PUT` on a config alarm's name is a 409,
//! so shadowing only ever comes from the file.
//!
//! Every change (a reload, a put, a delete) holds one async lock for its whole course: validate,
//! write the store (on the blocking pool, through the store's writer thread), then hand the
//! evaluator the new set, which evaluates at once. So the store, this registry and the evaluator
//! never disagree for longer than one change takes.

use std::collections::BTreeMap;

use gatehouse_admin::{ApiError, Written};
use gatehouse_alarms::{Definition, Evaluator};
use gatehouse_config::{AlarmSettings, alarm_from_json};
use gatehouse_store::{DefinitionOutcome, Store};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::alarms_api::{rfc3339, spec, status_json};

/// The alarms of the running gateway.
pub(crate) struct AlarmRegistry {
    store: Store,
    evaluator: Evaluator,
    alarms: tokio::sync::Mutex<Alarms>,
}

#[derive(Default)]
struct Alarms {
    /// The config file's alarms, in file order.
    config: Vec<AlarmSettings>,
    /// The file's name, for telling people where to edit a config alarm.
    config_file: String,
    /// The alarms created through the API, by name.
    api: BTreeMap<String, ApiAlarm>,
}

struct ApiAlarm {
    settings: AlarmSettings,
    created_unix: i64,
    updated_unix: i64,
}

impl Alarms {
    fn config_alarm(&self, name: &str) -> Option<&AlarmSettings> {
        self.config.iter().find(|alarm| alarm.name == name)
    }

    fn is_shadowed(&self, name: &str) -> bool {
        self.config_alarm(name).is_some()
    }

    /// What the evaluator runs: the file's alarms, then the API's that are not shadowed.
    fn definitions(&self) -> Vec<Definition> {
        let config = self
            .config
            .iter()
            .map(|alarm| Definition::from(spec(alarm)));
        let api = self
            .api
            .values()
            .filter(|alarm| !self.is_shadowed(&alarm.settings.name))
            .map(|alarm| Definition {
                spec: spec(&alarm.settings),
                history_since_unix: Some(alarm.created_unix),
            });
        config.chain(api).collect()
    }

    fn read_only(&self, name: &str) -> ApiError {
        ApiError::Conflict(format!(
            "alarm '{name}' is defined in the config file {}; edit the file and reload (gatehouse reload) to change it",
            self.config_file
        ))
    }
}

fn unavailable(what: &str) -> impl FnOnce(String) -> ApiError + '_ {
    move |error| ApiError::Unavailable(format!("{what}: {error}"))
}

/// Runs blocking store or evaluator work off the runtime threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| format!("the task failed: {error}"))
}

impl AlarmRegistry {
    /// Reads the API's alarms from the store and starts evaluating them with the file's.
    /// A stored alarm that no longer validates (a newer rule) is logged and left out.
    pub(crate) async fn open(
        store: Store,
        evaluator: Evaluator,
        config: Vec<AlarmSettings>,
        config_file: String,
    ) -> anyhow::Result<AlarmRegistry> {
        let reader = store.clone();
        let records = blocking(move || reader.alarm_definitions())
            .await
            .map_err(anyhow::Error::msg)??;
        let mut api = BTreeMap::new();
        for record in records {
            let settings = serde_json::from_str::<Value>(&record.spec)
                .map_err(|error| error.to_string())
                .and_then(|value| {
                    alarm_from_json(&record.name, value).map_err(|errors| errors.to_string())
                });
            match settings {
                Ok(settings) => {
                    api.insert(
                        record.name,
                        ApiAlarm {
                            settings,
                            created_unix: record.created_unix,
                            updated_unix: record.updated_unix,
                        },
                    );
                }
                Err(error) => tracing::warn!(
                    alarm = record.name,
                    %error,
                    "a stored alarm is invalid and is not evaluated; put it again or delete it"
                ),
            }
        }
        let registry = AlarmRegistry {
            store,
            evaluator,
            alarms: tokio::sync::Mutex::new(Alarms {
                config,
                config_file,
                api,
            }),
        };
        let alarms = registry.alarms.lock().await;
        warn_about_shadowed(&alarms);
        registry.apply(&alarms).await.map_err(anyhow::Error::msg)?;
        tracing::info!(
            config = alarms.config.len(),
            api = alarms.api.len(),
            "alarm evaluator running"
        );
        drop(alarms);
        Ok(registry)
    }

    /// Hands the evaluator the current set.
    async fn apply(&self, alarms: &Alarms) -> Result<(), String> {
        let evaluator = self.evaluator.clone();
        let definitions = alarms.definitions();
        blocking(move || evaluator.replace_definitions(definitions))
            .await?
            .map_err(|error| error.to_string())
    }

    /// Takes the alarms of a reloaded config file.
    pub(crate) async fn set_config(&self, config: Vec<AlarmSettings>, config_file: String) {
        let mut alarms = self.alarms.lock().await;
        alarms.config = config;
        alarms.config_file = config_file;
        warn_about_shadowed(&alarms);
        if let Err(error) = self.apply(&alarms).await {
            tracing::warn!(%error, "alarms were not updated");
        }
    }

    /// Answers `GET /admin/alarms`: every evaluated alarm with its state and source, and the
    /// shadowed API alarms.
    pub(crate) async fn list(&self) -> Value {
        let alarms = self.alarms.lock().await;
        let states: Vec<Value> = self
            .evaluator
            .states()
            .iter()
            .map(|status| {
                let mut entry = status_json(status);
                entry["source"] = json!(source(&alarms, &status.name));
                entry
            })
            .collect();
        let shadowed: Vec<Value> = alarms
            .api
            .keys()
            .filter(|name| alarms.is_shadowed(name))
            .map(|name| {
                json!({
                    "name": name,
                    "source": "api",
                    "reason": "a config file alarm of the same name takes precedence; delete this one or rename the file's",
                })
            })
            .collect();
        json!({ "alarms": states, "shadowed": shadowed })
    }

    /// Answers `GET /admin/alarms/{name}`.
    pub(crate) async fn get(&self, name: &str) -> Result<Value, ApiError> {
        let alarms = self.alarms.lock().await;
        let mut value = if let Some(alarm) = alarms.config_alarm(name) {
            let mut value = json!({ "name": name, "source": "config" });
            value["definition"] = alarm.to_document(true);
            if alarms.api.contains_key(name) {
                value["shadows"] = json!(
                    "an alarm of this name created through the admin API is shadowed by this one; DELETE removes it"
                );
            }
            value
        } else if let Some(alarm) = alarms.api.get(name) {
            api_json(alarm)
        } else {
            return Err(not_found(name));
        };
        if let Some(status) = self.evaluator.states().iter().find(|s| s.name == name) {
            for (key, field) in status_json(status).as_object().into_iter().flatten() {
                value[key] = field.clone();
            }
        }
        Ok(value)
    }

    /// Answers `PUT /admin/alarms/{name}`.
    pub(crate) async fn put(&self, name: String, body: Value) -> Result<Written, ApiError> {
        let mut alarms = self.alarms.lock().await;
        if alarms.config_alarm(&name).is_some() {
            return Err(alarms.read_only(&name));
        }
        let settings = alarm_from_json(&name, body).map_err(|errors| ApiError::Invalid {
            message: format!("alarm '{name}' is invalid; nothing was changed"),
            errors: errors
                .errors()
                .iter()
                .map(|error| match error.path.as_str() {
                    "" => error.message.clone(),
                    path => format!("{path}: {}", error.message),
                })
                .collect(),
        })?;
        let document = settings.to_document(false).to_string();
        let store = self.store.clone();
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let key = name.clone();
        let outcome = blocking(move || store.put_alarm_definition(&key, &document, now))
            .await
            .map_err(unavailable("cannot store the alarm"))?
            .map_err(|error| unavailable("cannot store the alarm")(error.to_string()))?;
        let DefinitionOutcome::Written { record, created } = outcome else {
            return Err(ApiError::Unavailable(
                "the store answered a write with something else".into(),
            ));
        };
        let alarm = ApiAlarm {
            settings,
            created_unix: record.created_unix,
            updated_unix: record.updated_unix,
        };
        let value = api_json(&alarm);
        alarms.api.insert(name.clone(), alarm);
        self.apply(&alarms)
            .await
            .map_err(unavailable("the alarm is stored but not evaluated"))?;
        tracing::info!(alarm = name, created, "alarm written through the admin API");
        Ok(if created {
            Written::Created(value)
        } else {
            Written::Replaced(value)
        })
    }

    /// Answers `DELETE /admin/alarms/{name}`: removes an API alarm (shadowed or not); the
    /// file's alarms cannot be deleted here.
    pub(crate) async fn delete(&self, name: String) -> Result<(), ApiError> {
        let mut alarms = self.alarms.lock().await;
        if !alarms.api.contains_key(&name) {
            return Err(match alarms.config_alarm(&name) {
                Some(_) => alarms.read_only(&name),
                None => not_found(&name),
            });
        }
        let store = self.store.clone();
        let key = name.clone();
        blocking(move || store.delete_alarm_definition(&key))
            .await
            .map_err(unavailable("cannot delete the alarm"))?
            .map_err(|error| unavailable("cannot delete the alarm")(error.to_string()))?;
        alarms.api.remove(&name);
        self.apply(&alarms)
            .await
            .map_err(unavailable("the alarm is deleted but still evaluated"))?;
        tracing::info!(alarm = name, "alarm deleted through the admin API");
        Ok(())
    }
}

fn source(alarms: &Alarms, name: &str) -> &'static str {
    if alarms.config_alarm(name).is_some() {
        "config"
    } else {
        "api"
    }
}

fn api_json(alarm: &ApiAlarm) -> Value {
    json!({
        "name": alarm.settings.name,
        "source": "api",
        "createdAt": rfc3339(alarm.created_unix),
        "updatedAt": rfc3339(alarm.updated_unix),
        "definition": alarm.settings.to_document(true),
    })
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!(
        "no alarm named '{name}'; gatehouse alarms lists them"
    ))
}

fn warn_about_shadowed(alarms: &Alarms) {
    for name in alarms.api.keys().filter(|name| alarms.is_shadowed(name)) {
        tracing::warn!(
            alarm = name,
            "the config file defines an alarm created through the admin API; the file's is evaluated and the API's is shadowed until deleted"
        );
    }
}
