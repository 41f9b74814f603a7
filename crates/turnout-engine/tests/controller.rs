//! The controller and its reconciler over a fake runtime and a fake data
//! plane (tests/support): apps kept apart, routes owned by one app, no
//! state committed whose route table cannot be built, and caller identity
//! for an instance's whole life.

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use support::{
    TestController, controller, controller_with, endpoints, internal_call, settle, settle_ready,
    template,
};
use turnout_engine::{Command, ControlError, EngineError};
use turnout_routing::{Decision, Forbidden, Weight};
use turnout_spec::Strategy;

const APP_A: &str = r#"
services:
  web:
    command: run
    labels:
      turnout.route.5000: a
      turnout.scale: "2"
    external_links: ["api.local"]
"#;

const APP_B: &str = r#"
services:
  web:
    command: run
    labels:
      turnout.route.5000: b
      turnout.scale: "2"
    external_links: ["api.local"]
  api:
    command: run
    labels:
      turnout.route.5000: api.local
"#;

fn forwards(decision: Decision) -> bool {
    matches!(decision, Decision::Forward(_))
}

fn host_ports(runtime: &support::FakeRuntime, app: &str, service: &str) -> BTreeSet<u16> {
    runtime
        .running(app, service)
        .iter()
        .map(|i| i.spec.ports[&5000])
        .collect()
}

#[tokio::test]
async fn two_apps_with_same_named_services_stay_apart() {
    let (c, runtime, plane) = controller();
    c.deploy("a", "a.yaml", template(APP_A)).await.unwrap();
    c.deploy("b", "b.yaml", template(APP_B)).await.unwrap();
    settle_ready(&c, "a").await;
    settle_ready(&c, "b").await;
    let table = plane.table();

    // Each app's route lists its own instances of `web`, and only those.
    for app in ["a", "b"] {
        let listed: BTreeSet<u16> = endpoints(&table, &format!("{app}.localhost"), "web")
            .iter()
            .map(|e| e.port())
            .collect();
        assert_eq!(listed.len(), 2, "app {app}: {listed:?}");
        assert_eq!(listed, host_ports(&runtime, app, "web"), "app {app}");
    }

    // b's web may call b's internal route; a's web, although it is named
    // the same and lists the host too, is another app's service.
    for inst in runtime.running("b", "web") {
        let decision = internal_call(&table, "api.local", Some(&inst.token()));
        assert!(forwards(decision), "b/web: {decision:?}");
    }
    for inst in runtime.running("a", "web") {
        let decision = internal_call(&table, "api.local", Some(&inst.token()));
        assert_eq!(
            decision,
            Decision::Forbidden(Forbidden::OtherApp),
            "a/web must not reach app b's api.local"
        );
    }
}

async fn assert_refused_as_taken(result: Result<impl std::fmt::Debug, ControlError>, owner: &str) {
    match result {
        Err(ControlError::Refused(EngineError::Conflict { message, hint })) => {
            assert!(
                message.contains(&format!("app {owner}")),
                "the refusal names the owner: {message}"
            );
            assert!(!hint.is_empty());
        }
        other => panic!("expected a conflict naming app {owner}, got {other:?}"),
    }
}

async fn events_of(c: &TestController, app: &str) -> usize {
    c.store().events(Some(app), 0, 1000).unwrap().len()
}

#[tokio::test]
async fn a_deploy_or_release_onto_another_apps_route_is_refused_and_stores_nothing() {
    let (c, _runtime, plane) = controller();
    c.deploy("a", "a.yaml", template(APP_A)).await.unwrap();
    settle_ready(&c, "a").await;
    let publishes = plane.publishes();

    // A deploy whose route is a's.
    let taken = APP_B.replace("turnout.route.5000: b", "turnout.route.5000: a");
    assert_refused_as_taken(c.deploy("b", "b.yaml", template(&taken)).await, "a").await;
    assert!(c.store().app("b").unwrap().is_none(), "nothing stored");
    assert_eq!(events_of(&c, "b").await, 0);
    assert_eq!(plane.publishes(), publishes, "nothing published");

    // A release of another app whose new template takes a's route.
    c.deploy("b", "b.yaml", template(APP_B)).await.unwrap();
    settle_ready(&c, "b").await;
    let templates = c.store().templates("b").unwrap().len();
    let before = c.status("b").await.unwrap();
    let release = taken.replace("  web:\n", "  web-v2:\n");
    assert_refused_as_taken(
        c.release(
            "b",
            "b2.yaml",
            template(&release),
            Strategy::BlueGreen,
            None,
        )
        .await,
        "a",
    )
    .await;
    assert_eq!(c.store().templates("b").unwrap().len(), templates);
    assert!(c.store().releases("b").unwrap().is_empty());
    assert_eq!(c.status("b").await.unwrap(), before);

    // And every app goes on working: weight changes and reconcile passes.
    c.command(
        "a",
        Command::SetWeights {
            route: "a.localhost".into(),
            weights: vec![("web".into(), Weight::new(50).unwrap())],
        },
    )
    .await
    .unwrap();
    c.command(
        "b",
        Command::SetWeights {
            route: "b.localhost".into(),
            weights: vec![("web".into(), Weight::new(50).unwrap())],
        },
    )
    .await
    .unwrap();
    c.reconcile().await.unwrap();
}

/// A template whose one route is shared by `n` services (each with
/// `coexist`): the templates allow it, the router splits between at most
/// 64 services, so from 65 on the route table cannot be built.
fn crowded(n: usize, prefix: &str) -> String {
    let mut text = String::from("services:\n");
    for i in 0..n {
        let _ = write!(
            text,
            "  {prefix}{i}:\n    command: run\n    labels:\n      turnout.route.5000: crowd\n      turnout.route.coexist: \"true\"\n"
        );
    }
    text
}

#[tokio::test]
async fn a_state_whose_route_table_cannot_be_built_is_never_committed() {
    let (c, _runtime, plane) = controller();
    match c
        .deploy("big", "big.yaml", template(&crowded(65, "s")))
        .await
    {
        Err(ControlError::Routes(e)) => {
            assert!(e.to_string().contains("at most 64"), "{e}")
        }
        other => panic!("expected the route table to be refused, got {other:?}"),
    }
    assert!(c.store().app("big").unwrap().is_none());
    assert_eq!(events_of(&c, "big").await, 0);
    assert!(c.app_names().await.is_empty());

    // A release that would push the route over the limit.
    c.deploy("big", "big.yaml", template(&crowded(40, "s")))
        .await
        .unwrap();
    let publishes = plane.publishes();
    let mut next = crowded(40, "s");
    next.push_str(&crowded(25, "t").replace("services:\n", ""));
    match c
        .release(
            "big",
            "big2.yaml",
            template(&next),
            Strategy::BlueGreen,
            None,
        )
        .await
    {
        Err(ControlError::Routes(_)) => {}
        other => panic!("expected the route table to be refused, got {other:?}"),
    }
    assert_eq!(c.store().templates("big").unwrap().len(), 1);
    assert!(c.store().releases("big").unwrap().is_empty());
    assert!(c.status("big").await.unwrap().release.is_none());
    assert_eq!(plane.publishes(), publishes);
    c.reconcile().await.unwrap();
}

const FRONT_V1: &str = r#"
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

fn front_v2() -> String {
    FRONT_V1.replace("front-v1", "front-v2")
}

async fn released(c: &TestController) {
    c.release(
        "app",
        "v2.yaml",
        template(&front_v2()),
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

/// Drives a confirm or a rollback with requests "in flight" to every
/// instance, and checks that the instances leaving keep their caller
/// identity until they are stopped.
async fn leaving_instances_keep_their_identity(confirm: bool) {
    let (c, runtime, plane) = controller();
    c.deploy("app", "v1.yaml", template(FRONT_V1))
        .await
        .unwrap();
    settle_ready(&c, "app").await;
    released(&c).await;
    let leaving = if confirm { "front-v1" } else { "front-v2" };
    let tokens: Vec<String> = runtime
        .running("app", leaving)
        .iter()
        .map(support::FakeInstance::token)
        .collect();
    assert!(!tokens.is_empty());

    plane.set_busy(true);
    let command = if confirm {
        Command::Confirm { switch: true }
    } else {
        Command::Rollback
    };
    c.command("app", command).await.unwrap();
    // The leaving service is out of the app and its instances drain, with
    // calls of their own still in flight: those must not become 403s.
    for _ in 0..5 {
        c.reconcile().await.unwrap();
        let table = plane.table();
        for token in &tokens {
            let decision = internal_call(&table, "api.local", Some(token));
            assert!(forwards(decision), "{leaving} while draining: {decision:?}");
        }
    }
    assert!(
        !runtime.running("app", leaving).is_empty(),
        "still draining"
    );
    // The store has them as draining (written from the instance's phase).
    let stored: Vec<String> = c
        .store()
        .instances("app")
        .unwrap()
        .into_iter()
        .filter(|r| r.service == leaving)
        .map(|r| r.state)
        .collect();
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|s| s == "draining"), "{stored:?}");

    // Once stopped, the credential is gone.
    plane.set_busy(false);
    settle(&c, "the drained instances stopped", async |_| {
        runtime.running("app", leaving).is_empty()
    })
    .await;
    settle(&c, "the stopped instances forgotten", async |_| {
        let table = plane.table();
        tokens.iter().all(|t| {
            internal_call(&table, "api.local", Some(t))
                == Decision::Forbidden(Forbidden::UnknownCredential)
        })
    })
    .await;
}

#[tokio::test]
async fn confirmed_old_instances_keep_their_caller_identity_while_draining() {
    leaving_instances_keep_their_identity(true).await;
}

#[tokio::test]
async fn rolled_back_new_instances_keep_their_caller_identity_while_draining() {
    leaving_instances_keep_their_identity(false).await;
}

#[tokio::test]
async fn an_instance_is_a_known_caller_before_it_starts() {
    let (c, runtime, _plane) = controller();
    c.deploy("app", "v1.yaml", template(FRONT_V1))
        .await
        .unwrap();
    settle_ready(&c, "app").await;
    released(&c).await;
    let started = runtime.started();
    assert_eq!(started.len(), 3);
    for inst in started {
        assert!(
            inst.known_at_start,
            "{} started before the router knew its credential",
            inst.spec.id
        );
        let proxy = inst.env("HTTP_PROXY").unwrap();
        assert!(
            proxy.starts_with(&format!("http://{}:", inst.spec.service)),
            "{proxy}"
        );
    }
}

#[tokio::test]
async fn deleting_an_app_stops_its_instances_without_store_errors() {
    let (c, runtime, _plane) = controller();
    c.deploy("a", "a.yaml", template(APP_A)).await.unwrap();
    c.deploy("b", "b.yaml", template(APP_B)).await.unwrap();
    settle_ready(&c, "a").await;
    settle_ready(&c, "b").await;
    c.delete("a").await.unwrap();
    // `settle` fails on any failed pass (a write for the deleted app's
    // instances breaks the store's foreign key).
    settle(&c, "app a's instances stopped", async |_| {
        runtime.running("a", "web").is_empty()
    })
    .await;
    assert_eq!(runtime.running("b", "web").len(), 2);
    assert!(c.store().instances("a").unwrap().is_empty());
}

/// DESIGN §2: a release whose new instances never get ready is recorded
/// `failed`, then rolled back, ending `rolled-back` with the reason.
#[tokio::test]
async fn a_release_that_never_gets_ready_is_failed_then_rolled_back() {
    let (c, runtime, _plane) =
        controller_with(|s| s.ready_deadline = std::time::Duration::from_millis(300));
    c.deploy("app", "v1.yaml", template(FRONT_V1))
        .await
        .unwrap();
    settle_ready(&c, "app").await;
    let mut events = c.subscribe();
    let never = FRONT_V1.replace("front-v1", "never-v2");
    c.release(
        "app",
        "v2.yaml",
        template(&never),
        Strategy::BlueGreen,
        None,
    )
    .await
    .unwrap();
    settle(&c, "the release to end", async |c| {
        c.status("app")
            .await
            .unwrap()
            .release
            .is_some_and(|r| r.state == "rolled-back")
    })
    .await;
    let release = c.status("app").await.unwrap().release.unwrap();
    assert!(
        release
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("failed: ") && r.contains("never-v2")),
        "{release:?}"
    );
    let mut kinds = Vec::new();
    while let Ok(event) = events.try_recv() {
        kinds.push(event.event.kind);
    }
    let failed = kinds.iter().position(|k| k == "release-failed");
    let rolled = kinds.iter().position(|k| k == "release-rolled-back");
    assert!(
        failed.is_some() && failed < rolled,
        "failed, then rolled back: {kinds:?}"
    );
    assert!(runtime.running("app", "never-v2").is_empty());
    assert_eq!(runtime.running("app", "front-v1").len(), 1);
}
