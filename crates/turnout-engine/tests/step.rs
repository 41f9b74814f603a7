//! The release state machine, transition by transition, on the seed demo
//! (`examples/hello`): no processes, no sockets.

use turnout_engine::{
    Action, App, Command, EngineError, InstanceView, Phase, ReleaseState, ServiceRole, deploy,
    plan, release_ready, resolve_route, step,
};
use turnout_routing::Weight;
use turnout_spec::{Strategy, Template};

fn template(file: &str) -> Template {
    let path = format!("{}/../../examples/hello/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    turnout_spec::parse(file, &text, &|_| None)
        .unwrap_or_else(|e| panic!("{file}: {e:?}"))
        .template
}

fn parse(text: &str) -> Template {
    turnout_spec::parse("t.yaml", text, &|_| None)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .template
}

fn hello() -> App {
    deploy("hello", "localhost", template("app.yaml"), 1)
}

fn release(app: &App, file: &str, strategy: Strategy) -> Result<App, EngineError> {
    let version = app.version + 1;
    step(
        app,
        Command::StartRelease {
            template: template(file),
            version,
            strategy,
            release_id: i64::from(version),
            now_ms: 1_000,
            plan: None,
        },
    )
    .map(|(next, _)| next)
}

fn ok(app: &App, command: Command) -> App {
    step(app, command).unwrap().0
}

fn weights(app: &App, route: &str) -> Vec<(String, Weight)> {
    app.weights[route]
        .iter()
        .map(|w| (w.service.clone(), w.weight))
        .collect()
}

fn w(pairs: &[(&str, u8)]) -> Vec<(String, Weight)> {
    pairs
        .iter()
        .map(|(s, w)| (s.to_string(), Weight::new(*w).unwrap()))
        .collect()
}

#[test]
fn deploy_gives_every_service_weight_100_and_no_release() {
    let app = hello();
    assert_eq!(app.version, 1);
    assert!(app.release.is_none());
    assert_eq!(
        weights(&app, "serviceb.localhost"),
        w(&[("serviceB-v1", 100)])
    );
    assert_eq!(weights(&app, "servicea.local"), w(&[("serviceA-v1", 100)]));
    assert!(
        app.services
            .values()
            .all(|e| e.role == ServiceRole::Current)
    );
}

#[test]
fn frontend_blue_green_walkthrough() {
    let app = hello();
    let app = release(&app, "app-frontend-v2.yaml", Strategy::BlueGreen).unwrap();
    let r = app.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::Deploying);
    assert_eq!((r.from_version, r.to_version), (1, 2));
    assert_eq!(app.services["serviceA-v1"].role, ServiceRole::Unchanged);
    assert_eq!(app.services["serviceB-v1"].role, ServiceRole::Old);
    assert_eq!(app.services["serviceB-v2"].role, ServiceRole::New);
    // The new service joins the shared route at weight 0.
    assert_eq!(
        weights(&app, "serviceb.localhost"),
        w(&[("serviceB-v1", 100), ("serviceB-v2", 0)])
    );
    // Confirm is refused while deploying.
    let e = step(&app, Command::Confirm { switch: false }).unwrap_err();
    assert_eq!(e.code(), "conflict");
    assert!(e.to_string().contains("deploying"), "{e}");
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    assert_eq!(
        app.release.as_ref().unwrap().state,
        ReleaseState::PendingConfirmation
    );
    // Confirm is refused while the new service carries weight 0.
    let e = step(&app, Command::Confirm { switch: false }).unwrap_err();
    assert!(
        e.hint().contains("turnout switch serviceb.localhost"),
        "{e:?}"
    );
    let app = ok(
        &app,
        Command::SetWeights {
            route: "serviceb.localhost".into(),
            weights: w(&[("serviceB-v2", 100)]),
        },
    );
    assert_eq!(
        weights(&app, "serviceb.localhost"),
        w(&[("serviceB-v1", 100), ("serviceB-v2", 100)])
    );
    let app = ok(
        &app,
        Command::Switch {
            route: "serviceb.localhost".into(),
        },
    );
    assert_eq!(
        weights(&app, "serviceb.localhost"),
        w(&[("serviceB-v1", 0), ("serviceB-v2", 100)])
    );
    let app = ok(&app, Command::Confirm { switch: false });
    assert_eq!(app.release.as_ref().unwrap().state, ReleaseState::Confirmed);
    assert!(!app.services.contains_key("serviceB-v1"));
    assert_eq!(
        weights(&app, "serviceb.localhost"),
        w(&[("serviceB-v2", 100)])
    );
    assert!(
        app.services
            .values()
            .all(|e| e.role == ServiceRole::Current)
    );
    assert_eq!(app.templates.keys().copied().collect::<Vec<_>>(), [2]);
}

#[test]
fn confirm_with_switch_moves_traffic_first() {
    let app = hello();
    let app = release(&app, "app-frontend-v2.yaml", Strategy::BlueGreen).unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    let (app, effects) = step(&app, Command::Confirm { switch: true }).unwrap();
    assert_eq!(
        weights(&app, "serviceb.localhost"),
        w(&[("serviceB-v2", 100)])
    );
    assert!(format!("{effects:?}").contains("switched"), "{effects:?}");
}

#[test]
fn backend_release_with_coexist_then_rollback_restores_everything() {
    let app = hello();
    let app = release(&app, "app-frontend-v2.yaml", Strategy::BlueGreen).unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    let app = ok(&app, Command::Confirm { switch: true });
    let before = app.clone();
    let app = release(&app, "app-backend-v2.yaml", Strategy::BlueGreen).unwrap();
    // serviceB-v2 only gained coexist: unchanged, not restarted.
    assert_eq!(app.services["serviceB-v2"].role, ServiceRole::Unchanged);
    assert_eq!(
        app.services["serviceB-v2"].spec_hash,
        before.services["serviceB-v2"].spec_hash
    );
    assert_eq!(app.services["serviceA-v1"].role, ServiceRole::Old);
    assert_eq!(app.services["serviceA-v2"].role, ServiceRole::New);
    assert_eq!(
        weights(&app, "servicea.local"),
        w(&[("serviceA-v1", 100), ("serviceA-v2", 0)])
    );
    let app = ok(
        &app,
        Command::Ready {
            release_id: 3,
            now_ms: 2_000,
        },
    );
    let app = ok(
        &app,
        Command::SetWeights {
            route: "servicea.local".into(),
            weights: w(&[("serviceA-v2", 100), ("serviceA-v1", 0)]),
        },
    );
    let app = ok(&app, Command::Rollback);
    let r = app.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::RolledBack);
    assert_eq!(r.reason, None);
    assert_eq!(app.version, before.version);
    assert_eq!(app.weights, before.weights);
    assert_eq!(
        app.services.keys().collect::<Vec<_>>(),
        before.services.keys().collect::<Vec<_>>()
    );
    assert!(
        app.services
            .values()
            .all(|e| e.role == ServiceRole::Current)
    );
}

#[test]
fn a_second_release_is_refused_naming_the_state() {
    let app = hello();
    let app = release(&app, "app-frontend-v2.yaml", Strategy::BlueGreen).unwrap();
    let e = release(&app, "app-backend-v2.yaml", Strategy::BlueGreen).unwrap_err();
    assert_eq!(e.code(), "conflict");
    assert!(
        e.to_string()
            .contains("release 2 of app hello is deploying"),
        "{e}"
    );
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    let e = release(&app, "app-backend-v2.yaml", Strategy::BlueGreen).unwrap_err();
    assert!(e.to_string().contains("pending-confirmation"), "{e}");
}

#[test]
fn failure_is_recorded_then_rolled_back_with_the_reason() {
    let app = hello();
    let before = app.clone();
    let app = release(&app, "app-frontend-v2.yaml", Strategy::BlueGreen).unwrap();
    let kinds = |effects: &[turnout_engine::Effect]| -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                turnout_engine::Effect::Event { kind, .. } => Some(kind.to_string()),
                _ => None,
            })
            .collect()
    };
    let (app, effects) = step(
        &app,
        Command::Fail {
            release_id: 2,
            reason: "serviceB-v2 not ready within 60s".into(),
        },
    )
    .unwrap();
    // First `failed` (DESIGN §2), nothing removed yet.
    let r = app.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::Failed);
    assert_eq!(
        r.reason.as_deref(),
        Some("failed: serviceB-v2 not ready within 60s")
    );
    assert!(app.services.contains_key("serviceB-v2"));
    assert_eq!(kinds(&effects), ["release-failed"]);
    // A failed release cannot be confirmed, nor failed again.
    assert!(step(&app, Command::Confirm { switch: true }).is_err());
    let (same, _) = step(
        &app,
        Command::Fail {
            release_id: 2,
            reason: "again".into(),
        },
    )
    .unwrap();
    assert_eq!(same, app);
    // Then the rollback ends it, keeping why it failed.
    let (app, effects) = step(&app, Command::Rollback).unwrap();
    let r = app.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::RolledBack);
    assert_eq!(
        r.reason.as_deref(),
        Some("failed: serviceB-v2 not ready within 60s")
    );
    assert_eq!(app.weights, before.weights);
    assert!(!app.services.contains_key("serviceB-v2"));
    assert_eq!(kinds(&effects), ["release-rolled-back"]);
    // A late Ready for the finished release changes nothing.
    let (same, effects) = step(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    )
    .unwrap();
    assert_eq!(same, app);
    assert!(effects.is_empty());
}

#[test]
fn blue_green_refuses_a_changed_service_with_the_rename_hint() {
    let app = deploy("a", "localhost", parse("web-v1:\n  command: x --a\n"), 1);
    let e = step(
        &app,
        Command::StartRelease {
            template: parse("web-v1:\n  command: x --b\n"),
            version: 2,
            strategy: Strategy::BlueGreen,
            release_id: 1,
            now_ms: 0,
            plan: None,
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), "invalid");
    assert!(e.hint().contains("web-v2"), "{e:?}");
}

#[test]
fn weights_are_validated_and_change_nothing_when_refused() {
    let app = hello();
    let cases: Vec<(Command, &str, &str)> = vec![
        (
            Command::SetWeights {
                route: "nope.localhost".into(),
                weights: w(&[("serviceB-v1", 1)]),
            },
            "not_found",
            "no route",
        ),
        (
            Command::SetWeights {
                route: "serviceb.localhost".into(),
                weights: w(&[("serviceA-v1", 1)]),
            },
            "not_found",
            "not on route",
        ),
        (
            Command::SetWeights {
                route: "serviceb.localhost".into(),
                weights: w(&[("serviceB-v1", 0)]),
            },
            "invalid",
            "no traffic target",
        ),
        (Command::Confirm { switch: false }, "conflict", "no release"),
        (Command::Rollback, "conflict", "no release"),
        (
            Command::Switch {
                route: "serviceb.localhost".into(),
            },
            "invalid",
            "not two",
        ),
    ];
    for (command, code, text) in cases {
        let e = step(&app, command.clone()).unwrap_err();
        assert_eq!(e.code(), code, "{command:?}: {e}");
        assert!(e.to_string().contains(text), "{command:?}: {e}");
        assert!(!e.hint().is_empty(), "{command:?} has no hint");
    }
}

#[test]
fn routes_resolve_by_id_or_unambiguous_prefix() {
    let app = hello();
    assert_eq!(
        resolve_route(&app, "serviceb").unwrap(),
        "serviceb.localhost"
    );
    assert_eq!(
        resolve_route(&app, "ServiceB.localhost").unwrap(),
        "serviceb.localhost"
    );
    assert_eq!(resolve_route(&app, "servicea").unwrap(), "servicea.local");
    assert_eq!(resolve_route(&app, "x").unwrap_err().code(), "not_found");
}

fn view(service: &str, ordinal: u32, hash: &str, phase: Phase) -> InstanceView {
    InstanceView {
        id: format!("{service}.{ordinal}"),
        service: service.into(),
        ordinal,
        spec_hash: hash.into(),
        phase,
    }
}

#[test]
fn plan_starts_missing_and_drains_unknown_instances() {
    let app = hello();
    let a = &app.services["serviceA-v1"].spec_hash;
    let instances = vec![
        view("serviceA-v1", 1, a, Phase::Ready),
        view("serviceA-v1", 3, a, Phase::Starting),
        view("gone-v1", 1, "x", Phase::Ready),
    ];
    let actions = plan(&app, &instances);
    assert!(actions.contains(&Action::Start {
        service: "serviceA-v1".into(),
        ordinal: 2
    }));
    assert_eq!(
        actions
            .iter()
            .filter(|a| matches!(a, Action::Start { service, .. } if service == "serviceB-v1"))
            .count(),
        2
    );
    assert!(actions.contains(&Action::Drain {
        id: "gone-v1.1".into()
    }));
}

#[test]
fn standard_release_replaces_in_batches_without_losing_capacity() {
    let v1 = parse(
        "web:\n  command: x --a\n  labels:\n    aliyun.scale: 3\n    aliyun.routing.port_80: web\n",
    );
    let v2 = parse(
        "web:\n  command: x --b\n  labels:\n    aliyun.scale: 3\n    aliyun.routing.port_80: web\n    aliyun.rolling_updates.parallelism: 1\n",
    );
    let app = deploy("a", "localhost", v1, 1);
    let old_hash = app.services["web"].spec_hash.clone();
    let (app, _) = step(
        &app,
        Command::StartRelease {
            template: v2,
            version: 2,
            strategy: Strategy::Standard,
            release_id: 1,
            now_ms: 0,
            plan: None,
        },
    )
    .unwrap();
    let new_hash = app.services["web"].spec_hash.clone();
    assert_ne!(old_hash, new_hash);
    // Simulate the reconciler: start what is planned, make it ready, drain.
    let mut instances: Vec<InstanceView> = (1..=3)
        .map(|o| view("web", o, &old_hash, Phase::Ready))
        .collect();
    let mut rounds = 0;
    while !release_ready(&app, &instances) {
        rounds += 1;
        assert!(rounds < 20, "no progress: {instances:?}");
        // Newly started instances become ready before the next look.
        for i in instances.iter_mut() {
            if i.phase == Phase::Starting {
                i.phase = Phase::Ready;
            }
        }
        for action in plan(&app, &instances) {
            match action {
                Action::Start { service, ordinal } => {
                    instances.push(view(&service, ordinal, &new_hash, Phase::Starting));
                }
                Action::Drain { id } => instances.retain(|i| i.id != id),
            }
        }
        let ready = instances.iter().filter(|i| i.phase == Phase::Ready).count();
        assert!(ready >= 3, "capacity dropped to {ready}: {instances:?}");
        let starting = instances
            .iter()
            .filter(|i| i.phase == Phase::Starting)
            .count();
        assert!(
            starting <= 1,
            "more than parallelism started: {instances:?}"
        );
    }
    assert!(instances.iter().all(|i| i.spec_hash == new_hash));
    let app = ok(
        &app,
        Command::Ready {
            release_id: 1,
            now_ms: 2_000,
        },
    );
    assert_eq!(app.release.as_ref().unwrap().state, ReleaseState::Confirmed);
}

#[test]
fn plan_starts_dependents_only_once_their_dependencies_are_up() {
    let t = parse(
        "db:\n  command: x\n  labels:\n    aliyun.scale: 2\nweb:\n  command: y\n  labels:\n    aliyun.depends: db\n",
    );
    let app = deploy("a", "localhost", t, 1);
    let db = app.services["db"].spec_hash.clone();
    let starts = |instances: &[InstanceView]| -> Vec<String> {
        plan(&app, instances)
            .into_iter()
            .filter_map(|a| match a {
                Action::Start { service, .. } => Some(service),
                Action::Drain { .. } => None,
            })
            .collect()
    };
    assert_eq!(starts(&[]), ["db", "db"]);
    let half = [
        view("db", 1, &db, Phase::Ready),
        view("db", 2, &db, Phase::Starting),
    ];
    assert!(starts(&half).is_empty(), "web waits for every db instance");
    let up = [
        view("db", 1, &db, Phase::Ready),
        view("db", 2, &db, Phase::Ready),
    ];
    assert_eq!(starts(&up), ["web"]);
}

/// The step resolves a route's bare prefix itself (under the
/// controller's lock, with the state it changes), and refuses an unknown
/// one.
#[test]
fn weights_and_switch_take_a_bare_prefix() {
    let app = release(&hello(), "app-frontend-v2.yaml", Strategy::BlueGreen).unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    let by_id = ok(
        &app,
        Command::SetWeights {
            route: "serviceb.localhost".into(),
            weights: w(&[("serviceB-v2", 40)]),
        },
    );
    let by_prefix = ok(
        &app,
        Command::SetWeights {
            route: "ServiceB".into(),
            weights: w(&[("serviceB-v2", 40)]),
        },
    );
    assert_eq!(by_id, by_prefix);
    let switched = ok(
        &app,
        Command::Switch {
            route: "serviceb".into(),
        },
    );
    assert_ne!(switched.weights, app.weights);
    let e = step(
        &app,
        Command::Switch {
            route: "nope".into(),
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), "not_found");
}

#[test]
fn a_progressive_strategy_without_its_plan_is_refused() {
    let app = hello();
    for strategy in [Strategy::Canary, Strategy::Gray, Strategy::AbTest] {
        let err = release(&app, "app-frontend-v2.yaml", strategy).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("a {strategy} release needs its plan")
        );
        assert!(matches!(err, EngineError::Invalid { .. }), "{err:?}");
    }
    assert!(app.release.is_none());
}
