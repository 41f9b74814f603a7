//! ARCHITECTURE.md: a command is answered only after its change is
//! committed to the store and its route table published. Each command of
//! the controller (deploy, release, set weights, switch, confirm,
//! rollback, delete) is checked the moment it returns: the store, read
//! back, holds its change, and the fake router already has a table with
//! it. The reconciler runs only when a test drives it (`settle`), and the
//! test's runtime is single-threaded, so nothing but the command itself can
//! have committed or published between its call and these checks.

mod support;

use std::collections::BTreeSet;

use support::{TestController, controller, settle, settle_ready, template};
use turnout_engine::Command;
use turnout_routing::{Listener, RouteTable, Weight};
use turnout_spec::Strategy;

const V1: &str = r#"
services:
  api:
    command: run
    labels:
      turnout.route.5000: api.local
  front-v1:
    command: run
    labels:
      turnout.route.5000: front
    external_links: ["api.local"]
"#;

const HOST: &str = "front.localhost";

/// (route, service, weight) of every weight the store holds for `app`,
/// read back through the store; empty when the store has no such app.
fn stored_weights(c: &TestController, app: &str) -> BTreeSet<(String, String, u8)> {
    c.store()
        .app(app)
        .unwrap()
        .map(|record| {
            record
                .weights
                .into_iter()
                .map(|w| (w.route_id, w.service, w.weight))
                .collect()
        })
        .unwrap_or_default()
}

/// (route, service, weight) of every service on `app`'s routes in `table`.
fn published_weights(table: &RouteTable, app: &str) -> BTreeSet<(String, String, u8)> {
    table
        .routes()
        .iter()
        .filter(|r| r.app().is_some_and(|a| &**a == app))
        .flat_map(|r| {
            r.services()
                .iter()
                .map(|s| (r.id().to_string(), s.name().to_string(), s.weight().get()))
        })
        .collect()
}

/// The weights of `front`'s services as (service, weight).
fn front(weights: &BTreeSet<(String, String, u8)>) -> BTreeSet<(String, u8)> {
    weights
        .iter()
        .filter(|(route, _, _)| route == HOST)
        .map(|(_, service, weight)| (service.clone(), *weight))
        .collect()
}

fn pair(service: &str, weight: u8) -> (String, u8) {
    (service.to_string(), weight)
}

/// What every answered command must show: a publish since `publishes`,
/// and the published table and the store agreeing on `app`'s weights.
/// Returns the store's weights of the front route.
fn committed_and_published(
    c: &TestController,
    plane: &support::FakePlane,
    publishes: u32,
    what: &str,
) -> BTreeSet<(String, u8)> {
    assert!(
        plane.publishes() > publishes,
        "{what}: answered before its table was published"
    );
    let stored = stored_weights(c, "app");
    assert_eq!(
        published_weights(&plane.table(), "app"),
        stored,
        "{what}: the router's table and the store disagree when the command is answered"
    );
    front(&stored)
}

fn release_state(c: &TestController) -> Option<String> {
    c.store()
        .current_release("app")
        .unwrap()
        .map(|release| release.state)
}

async fn released(c: &TestController) {
    c.release(
        "app",
        "v2.yaml",
        template(&V1.replace("front-v1", "front-v2")),
        Strategy::BlueGreen,
        None,
    )
    .await
    .unwrap();
    settle(c, "pending-confirmation", async |c| {
        c.status("app")
            .await
            .unwrap()
            .release
            .is_some_and(|r| r.state == "pending-confirmation")
    })
    .await;
}

fn weights(pairs: &[(&str, u8)]) -> Vec<(String, Weight)> {
    pairs
        .iter()
        .map(|(s, w)| (s.to_string(), Weight::new(*w).unwrap()))
        .collect()
}

#[tokio::test]
async fn deploy_release_weights_switch_and_confirm_are_answered_after_commit_and_publish() {
    let (c, _runtime, plane) = controller();

    let publishes = plane.publishes();
    c.deploy("app", "v1.yaml", template(V1)).await.unwrap();
    assert_eq!(
        c.store().app("app").unwrap().map(|a| a.template_version),
        Some(1),
        "deploy: answered before the app was committed"
    );
    let front_weights = committed_and_published(&c, &plane, publishes, "deploy");
    assert!(
        plane.table().lookup(Listener::Public, HOST, "/").is_some(),
        "deploy: answered before the app's route was published"
    );
    assert_eq!(front_weights, BTreeSet::from([pair("front-v1", 100)]));
    settle_ready(&c, "app").await;

    let publishes = plane.publishes();
    c.release(
        "app",
        "v2.yaml",
        template(&V1.replace("front-v1", "front-v2")),
        Strategy::BlueGreen,
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        release_state(&c).as_deref(),
        Some("deploying"),
        "release: answered before the release was committed"
    );
    assert_eq!(c.store().templates("app").unwrap().len(), 2);
    let front_weights = committed_and_published(&c, &plane, publishes, "release");
    assert_eq!(
        front_weights,
        BTreeSet::from([pair("front-v1", 100), pair("front-v2", 0)]),
        "release: the new service joins the route at weight 0"
    );
    settle(&c, "pending-confirmation", async |c| {
        c.status("app")
            .await
            .unwrap()
            .release
            .is_some_and(|r| r.state == "pending-confirmation")
    })
    .await;

    let publishes = plane.publishes();
    c.command(
        "app",
        Command::SetWeights {
            route: "front".into(),
            weights: weights(&[("front-v1", 70), ("front-v2", 30)]),
        },
    )
    .await
    .unwrap();
    let front_weights = committed_and_published(&c, &plane, publishes, "set weights");
    assert_eq!(
        front_weights,
        BTreeSet::from([pair("front-v1", 70), pair("front-v2", 30)])
    );

    let publishes = plane.publishes();
    c.command(
        "app",
        Command::Switch {
            route: "front".into(),
        },
    )
    .await
    .unwrap();
    let front_weights = committed_and_published(&c, &plane, publishes, "switch");
    assert_eq!(
        front_weights,
        BTreeSet::from([pair("front-v1", 0), pair("front-v2", 100)])
    );

    let publishes = plane.publishes();
    c.command("app", Command::Confirm { switch: false })
        .await
        .unwrap();
    assert_eq!(
        release_state(&c).as_deref(),
        Some("confirmed"),
        "confirm: answered before the confirmation was committed"
    );
    let front_weights = committed_and_published(&c, &plane, publishes, "confirm");
    assert_eq!(
        front_weights,
        BTreeSet::from([pair("front-v2", 100)]),
        "confirm: the old service leaves the route"
    );

    let publishes = plane.publishes();
    c.delete("app").await.unwrap();
    assert!(
        c.store().app("app").unwrap().is_none(),
        "delete: answered before the deletion was committed"
    );
    assert!(
        plane.publishes() > publishes,
        "delete: answered before its table was published"
    );
    assert!(
        plane.table().lookup(Listener::Public, HOST, "/").is_none(),
        "delete: answered before the table without the app was published"
    );
}

#[tokio::test]
async fn a_rollback_is_answered_after_commit_and_publish() {
    let (c, _runtime, plane) = controller();
    c.deploy("app", "v1.yaml", template(V1)).await.unwrap();
    settle_ready(&c, "app").await;
    released(&c).await;
    c.command(
        "app",
        Command::SetWeights {
            route: "front".into(),
            weights: weights(&[("front-v1", 10), ("front-v2", 90)]),
        },
    )
    .await
    .unwrap();

    let publishes = plane.publishes();
    c.command("app", Command::Rollback).await.unwrap();
    assert_eq!(
        release_state(&c).as_deref(),
        Some("rolled-back"),
        "rollback: answered before the rollback was committed"
    );
    let front_weights = committed_and_published(&c, &plane, publishes, "rollback");
    assert_eq!(
        front_weights,
        BTreeSet::from([pair("front-v1", 100)]),
        "rollback: the new service leaves and the old one has its weight back"
    );
}
