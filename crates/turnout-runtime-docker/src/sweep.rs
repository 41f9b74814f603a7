//! Strays: containers this server made that no instance record knows.
//!
//! A server killed after an app's records were deleted (`DELETE
//! /v1/apps/{app}` commits at once; its containers drain and stop later)
//! leaves containers that nothing will ever look at again. A restarted
//! server removes every container carrying its own server id whose key no
//! record holds; containers without its id are never touched.

use std::collections::{BTreeSet, HashMap};

use bollard::query_parameters::ListContainersOptionsBuilder;
use turnout_runtime::RuntimeError;

use crate::container::{LABEL_APP, LABEL_KEY, LABEL_SERVER};
use crate::docker::{DockerRuntime, engine};

/// Removes this server's containers whose key is not in `known`; the
/// names of the removed ones.
pub(crate) async fn sweep(
    runtime: &DockerRuntime,
    known: &[String],
) -> Result<Vec<String>, RuntimeError> {
    let filters = HashMap::from([(
        "label",
        vec![format!("{LABEL_SERVER}={}", runtime.server_id())],
    )]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let listed = runtime
        .client()
        .list_containers(Some(options))
        .await
        .map_err(|e| engine("cannot list this server's containers".into(), &e))?;
    let known: BTreeSet<&str> = known.iter().map(String::as_str).collect();
    let mut removed = Vec::new();
    let mut apps = BTreeSet::new();
    for c in listed {
        let labels = c.labels.unwrap_or_default();
        // The filter asked the engine for our id; check it again anyway:
        // a container of another owner is never removed.
        if labels.get(LABEL_SERVER).map(String::as_str) != Some(runtime.server_id()) {
            continue;
        }
        let key = labels.get(LABEL_KEY).map(String::as_str).unwrap_or("");
        if known.contains(key) {
            continue;
        }
        let Some(id) = c.id else { continue };
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map_or_else(|| id.clone(), |n| n.trim_start_matches('/').to_string());
        tracing::info!(container = %name, "removing a stray container of this server");
        runtime.remove(&id).await?;
        if let Some(app) = labels.get(LABEL_APP) {
            apps.insert(app.clone());
        }
        removed.push(name);
    }
    for app in apps {
        runtime.remove_network_if_unused(&app).await;
    }
    Ok(removed)
}
