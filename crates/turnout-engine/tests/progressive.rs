//! Progressive releases (DESIGN §8) step by step, on the seed demo: gray
//! steps moved on by their pause, canary scale and promotion, and the
//! verbs promote, pause, resume and abort, each refused where it makes no
//! sense. No processes, no sockets.

use turnout_engine::{
    App, Command, EngineError, InstanceView, PauseReason, Phase, ReleaseState, Verdict, deploy,
    plan, release_ready, step,
};
use turnout_routing::Weight;
use turnout_spec::{PlanSpans, ReleaseBlock, ReleasePlan, Strategy, Template};

fn template(file: &str) -> Template {
    let path = format!("{}/../../examples/hello/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    turnout_spec::parse(file, &text, &|_| None)
        .unwrap_or_else(|e| panic!("{file}: {e:?}"))
        .template
}

fn hello() -> App {
    deploy("hello", "localhost", template("app.yaml"), 1)
}

/// Starts a release of the frontend v2 (serviceB-v2 on serviceb.localhost
/// next to serviceB-v1) with `flags` as the plan.
fn start(app: &App, flags: &str) -> Result<(App, Vec<turnout_engine::Effect>), EngineError> {
    let t = template("app-frontend-v2.yaml");
    let overrides: ReleaseBlock = serde_json::from_str(flags).unwrap();
    let plan = ReleasePlan::with_overrides(&t, &PlanSpans::default(), &overrides)
        .unwrap()
        .plan;
    step(
        app,
        Command::StartRelease {
            template: t,
            version: 2,
            strategy: plan.strategy,
            release_id: 2,
            now_ms: 1_000,
            plan: Some(Box::new((overrides, plan))),
        },
    )
}

fn ok(app: &App, command: Command) -> App {
    step(app, command).unwrap().0
}

fn front(app: &App) -> Vec<(String, u8)> {
    app.weights["serviceb.localhost"]
        .iter()
        .map(|w| (w.service.clone(), w.weight.get()))
        .collect()
}

fn pair(old: u8, new: u8) -> Vec<(String, u8)> {
    vec![("serviceB-v1".into(), old), ("serviceB-v2".into(), new)]
}

fn state(app: &App) -> ReleaseState {
    app.release.as_ref().unwrap().state
}

fn step_index(app: &App) -> Option<usize> {
    app.release
        .as_ref()
        .unwrap()
        .progress
        .as_ref()
        .unwrap()
        .step
}

/// Every instance of every service of `app` ready, `n` per service unless
/// `scale` says otherwise.
fn ready_views(app: &App, scale: impl Fn(&str) -> u32) -> Vec<InstanceView> {
    app.services
        .values()
        .flat_map(|e| {
            (1..=scale(e.name())).map(move |o| InstanceView {
                id: format!("{}.{o}", e.name()),
                service: e.name().to_string(),
                ordinal: o,
                spec_hash: e.spec_hash.clone(),
                phase: Phase::Ready,
            })
        })
        .collect()
}

#[test]
fn a_gray_release_moves_through_its_steps_on_its_pause() {
    let (app, _) = start(
        &hello(),
        r#"{"strategy": "gray", "steps": [10, 50, 100], "pause": "30s"}"#,
    )
    .unwrap();
    assert_eq!(state(&app), ReleaseState::Deploying);
    assert_eq!(
        front(&app),
        pair(100, 0),
        "no traffic before the instances are ready"
    );
    // Promote is refused while the new instances start.
    let e = step(
        &app,
        Command::Promote {
            full: false,
            now_ms: 1_500,
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), "conflict");
    assert!(e.to_string().contains("deploying"), "{e}");

    let (app, effects) = step(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    )
    .unwrap();
    assert_eq!(state(&app), ReleaseState::Progressing);
    assert_eq!(step_index(&app), Some(0));
    assert_eq!(front(&app), pair(90, 10));
    assert!(
        format!("{effects:?}").contains("step 1 of 3"),
        "{effects:?}"
    );
    // The unchanged backend's own route is left alone.
    assert_eq!(app.weights["servicea.local"][0].weight, Weight::MAX);

    // Before the pause ends nothing moves; after it, the next step.
    let same = ok(
        &app,
        Command::Tick {
            release_id: 2,
            now_ms: 31_999,
        },
    );
    assert_eq!(same, app);
    let app = ok(
        &app,
        Command::Tick {
            release_id: 2,
            now_ms: 32_000,
        },
    );
    assert_eq!((step_index(&app), front(&app)), (Some(1), pair(50, 50)));
    // A tick about another release changes nothing.
    assert_eq!(
        ok(
            &app,
            Command::Tick {
                release_id: 9,
                now_ms: 99_000
            }
        ),
        app
    );
    let app = ok(
        &app,
        Command::Tick {
            release_id: 2,
            now_ms: 62_000,
        },
    );
    assert_eq!((step_index(&app), front(&app)), (Some(2), pair(0, 100)));
    // After the last step's pause: pending-confirmation, then confirm.
    let app = ok(
        &app,
        Command::Tick {
            release_id: 2,
            now_ms: 92_000,
        },
    );
    assert_eq!(state(&app), ReleaseState::PendingConfirmation);
    let app = ok(&app, Command::Confirm { switch: false });
    assert_eq!(state(&app), ReleaseState::Confirmed);
    assert!(!app.services.contains_key("serviceB-v1"));
}

#[test]
fn promote_pause_resume_and_abort_steer_the_steps() {
    let (app, _) = start(
        &hello(),
        r#"{"strategy": "gray", "steps": [20, 60, 100], "pause": "10s", "on_success": "confirm"}"#,
    )
    .unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 0,
        },
    );
    assert_eq!(front(&app), pair(80, 20));
    // Resume is refused while it runs; pause holds it, ticks do nothing.
    assert_eq!(
        step(&app, Command::Resume { now_ms: 1 })
            .unwrap_err()
            .code(),
        "conflict"
    );
    let app = ok(&app, Command::Pause);
    assert_eq!(state(&app), ReleaseState::Paused);
    let progress = app.release.as_ref().unwrap().progress.clone().unwrap();
    assert_eq!(progress.paused, Some(PauseReason::Manual));
    assert_eq!(
        ok(
            &app,
            Command::Tick {
                release_id: 2,
                now_ms: 60_000
            }
        ),
        app
    );
    assert_eq!(step(&app, Command::Pause).unwrap_err().code(), "conflict");
    // Resume counts the pause from now.
    let app = ok(&app, Command::Resume { now_ms: 60_000 });
    assert_eq!(state(&app), ReleaseState::Progressing);
    assert_eq!(
        ok(
            &app,
            Command::Tick {
                release_id: 2,
                now_ms: 69_999
            }
        ),
        app
    );
    // Promote moves on at once; --full goes to 100 %; after the last step
    // with on_success: confirm the release is confirmed by itself.
    let app = ok(
        &app,
        Command::Promote {
            full: false,
            now_ms: 61_000,
        },
    );
    assert_eq!((step_index(&app), front(&app)), (Some(1), pair(40, 60)));
    let app = ok(
        &app,
        Command::Promote {
            full: true,
            now_ms: 62_000,
        },
    );
    assert_eq!((step_index(&app), front(&app)), (Some(2), pair(0, 100)));
    let app = ok(
        &app,
        Command::Promote {
            full: false,
            now_ms: 63_000,
        },
    );
    assert_eq!(state(&app), ReleaseState::Confirmed);
    let e = step(
        &app,
        Command::Promote {
            full: false,
            now_ms: 64_000,
        },
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("no release in progress to promote"),
        "{e}"
    );
}

#[test]
fn abort_rolls_back_with_its_reason() {
    let (app, _) = start(&hello(), r#"{"strategy": "gray", "steps": [50, 100]}"#).unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 0,
        },
    );
    assert_eq!(front(&app), pair(50, 50));
    let app = ok(
        &app,
        Command::Abort {
            reason: "checkout errors".into(),
        },
    );
    let r = app.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::RolledBack);
    assert_eq!(r.reason.as_deref(), Some("aborted: checkout errors"));
    assert_eq!(front(&app), vec![("serviceB-v1".to_string(), 100)]);
    assert!(!app.services.contains_key("serviceB-v2"));
}

#[test]
fn until_promoted_waits_at_each_step_for_the_operator() {
    let (app, _) = start(
        &hello(),
        r#"{"strategy": "gray", "steps": [30, 100], "pause": "until-promoted"}"#,
    )
    .unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 0,
        },
    );
    assert_eq!(state(&app), ReleaseState::Paused);
    assert_eq!(front(&app), pair(70, 30));
    assert_eq!(
        ok(
            &app,
            Command::Tick {
                release_id: 2,
                now_ms: 10_000_000
            }
        ),
        app
    );
    let e = step(&app, Command::Resume { now_ms: 1 }).unwrap_err();
    assert!(e.to_string().contains("until-promoted"), "{e}");
    let app = ok(
        &app,
        Command::Promote {
            full: false,
            now_ms: 5,
        },
    );
    assert_eq!(
        (state(&app), front(&app)),
        (ReleaseState::Paused, pair(0, 100))
    );
    let app = ok(
        &app,
        Command::Promote {
            full: false,
            now_ms: 6,
        },
    );
    assert_eq!(state(&app), ReleaseState::PendingConfirmation);
}

#[test]
fn a_canary_runs_its_scale_then_every_instance_once_promoted() {
    // serviceB-v2 has scale 2 in this template.
    let text = std::fs::read_to_string(format!(
        "{}/../../examples/hello/app-frontend-v2.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(text.contains("serviceB-v2"));
    let (app, _) = start(
        &hello(),
        r#"{"strategy": "canary", "canary": {"share": 5}}"#,
    )
    .unwrap();
    let full = app.services["serviceB-v2"].spec.settings.scale;
    // The canary wants one instance of the new service, not `full`.
    let views = ready_views(&app, |s| if s == "serviceB-v2" { 0 } else { 1 });
    let starts: Vec<_> = plan(&app, &views)
        .into_iter()
        .filter(|a| format!("{a:?}").contains("serviceB-v2"))
        .collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    let one = ready_views(&app, |_| 1);
    assert!(release_ready(&app, &one));
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 0,
        },
    );
    assert_eq!(front(&app), pair(95, 5));
    // Promote: every new instance first, the weights stay.
    let app = ok(
        &app,
        Command::Promote {
            full: false,
            now_ms: 1,
        },
    );
    assert_eq!(state(&app), ReleaseState::Progressing);
    assert_eq!(front(&app), pair(95, 5));
    if full > 1 {
        assert!(!release_ready(&app, &one), "the canary now wants {full}");
        let e = step(
            &app,
            Command::Promote {
                full: false,
                now_ms: 2,
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("starting its new instances"), "{e}");
    }
    // Should the rest never become ready, the scale-up fails like a
    // deploy (the reconciler's deadline), and is rolled back.
    let failed = ok(
        &app,
        Command::Fail {
            release_id: 2,
            reason: "new instances of serviceB-v2 not ready within 60s".into(),
        },
    );
    assert_eq!(state(&failed), ReleaseState::Failed);
    let all = ready_views(&app, |s| if s == "serviceB-v2" { full } else { 1 });
    assert!(release_ready(&app, &all));
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 3,
        },
    );
    assert_eq!(front(&app), pair(0, 100));
    assert_eq!(step_index(&app), Some(1));
}

#[test]
fn an_https_prometheus_and_a_pause_of_blue_green_are_refused() {
    // The Prometheus gate is queried over plain HTTP: another URL is
    // refused, naming the field and the fix.
    let gate = |url: &str| {
        format!(
            r#"{{"strategy": "gray", "analysis": {{"prometheus": {{"url": "{url}", "query": "up", "max": 1}}}}}}"#
        )
    };
    let e = start(&hello(), &gate("https://p:9090")).unwrap_err();
    assert_eq!(e.code(), "invalid");
    assert!(
        e.to_string()
            .starts_with("analysis.prometheus.url: https://p:9090 is not an http:// URL"),
        "{e}"
    );
    assert!(e.hint().contains("http://prometheus:9090"), "{}", e.hint());
    assert!(start(&hello(), &gate("http://p:9090")).is_ok());
    // A blue-green release has no steps to promote.
    let bg = step(
        &hello(),
        Command::StartRelease {
            template: template("app-frontend-v2.yaml"),
            version: 2,
            strategy: Strategy::BlueGreen,
            release_id: 2,
            now_ms: 0,
            plan: None,
        },
    )
    .unwrap()
    .0;
    let e = step(&bg, Command::Pause).unwrap_err();
    assert!(e.to_string().contains("blue-green"), "{e}");
}

#[test]
fn an_ab_test_has_its_rules_and_goal_on_the_shared_route_from_its_first_step() {
    let plan = r#"{"strategy": "ab-test", "pause": "until-promoted", "ab": {"share": 30,
        "goal": {"path": "/checkout"},
        "rules": [{"match": {"header": {"x-variant": "b"}}, "service": "serviceB-v2"}]}}"#;
    let (app, _) = start(&hello(), plan).unwrap();
    let front_spec = |app: &App| {
        turnout_engine::route_specs(app, &turnout_engine::NoInstances)
            .into_iter()
            .find(|r| r.id.as_deref() == Some("serviceb.localhost"))
            .unwrap()
    };
    // While the new instances start, no goal: their clients would count
    // on the old side before the split.
    let deploying = front_spec(&app);
    assert_eq!(deploying.ab_goal, None);
    assert!(deploying.rules.is_empty());
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    assert_eq!(front(&app), pair(70, 30));
    let split = front_spec(&app);
    assert_eq!(
        split.ab_goal.as_ref().map(|g| g.path.as_str()),
        Some("/checkout")
    );
    assert_eq!(split.rules.len(), 1);
    assert_eq!(split.rules[0].service, "serviceB-v2");
    // The internal route the release does not share gets neither.
    let internal = turnout_engine::route_specs(&app, &turnout_engine::NoInstances)
        .into_iter()
        .find(|r| r.id.as_deref() == Some("servicea.local"))
        .unwrap();
    assert!(internal.ab_goal.is_none() && internal.rules.is_empty());
    // Ended (aborted): gone with the release.
    let app = ok(
        &app,
        Command::Abort {
            reason: "test".into(),
        },
    );
    let ended = front_spec(&app);
    assert!(ended.ab_goal.is_none() && ended.rules.is_empty());
}

/// Promote ends an A/B test at its split, waiting for the operator's
/// confirm; `--full` gives the new version 100 % first (DESIGN §8).
#[test]
fn promoting_an_ab_test_ends_it_at_its_split_and_full_at_100() {
    let plan = r#"{"strategy": "ab-test", "pause": "until-promoted", "ab": {"share": 30}}"#;
    let (app, _) = start(&hello(), plan).unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 2_000,
        },
    );
    assert_eq!(
        (state(&app), front(&app)),
        (ReleaseState::Paused, pair(70, 30))
    );
    for (full, weights) in [(false, pair(70, 30)), (true, pair(0, 100))] {
        let done = ok(
            &app,
            Command::Promote {
                full,
                now_ms: 3_000,
            },
        );
        assert_eq!(
            (state(&done), front(&done)),
            (ReleaseState::PendingConfirmation, weights),
            "promote full: {full}"
        );
    }
}

#[test]
fn an_ab_test_without_a_shared_route_or_with_a_rule_elsewhere_is_refused() {
    let e = start(
        &hello(),
        r#"{"strategy": "ab-test", "ab": {"rules": [{"match": {"header": {"x": "1"}}, "service": "serviceA-v1"}]}}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), "invalid");
    assert!(e.to_string().contains("on no route the test shares"), "{e}");
}

#[test]
fn a_gray_release_of_frontend_and_backend_keeps_each_frontend_in_its_lane() {
    let root = format!("{}/../../examples/hello-gray", env!("CARGO_MANIFEST_DIR"));
    let v1_text = std::fs::read_to_string(format!("{root}/app.yaml")).unwrap();
    let parse = |text: &str| {
        turnout_spec::parse("t.yaml", text, &|_| None)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .template
    };
    // Both versions renamed: serviceB-v2 calls serviceA through servicea.local.
    let v2 = parse(
        &v1_text
            .replace("-v1:", "-v2:")
            .replace("world!", "world v2!"),
    );
    let app = deploy("hello", "localhost", parse(&v1_text), 1);
    let overrides: ReleaseBlock =
        serde_json::from_str(r#"{"strategy": "gray", "steps": [10, 100]}"#).unwrap();
    let plan = ReleasePlan::with_overrides(&v2, &PlanSpans::default(), &overrides)
        .unwrap()
        .plan;
    assert!(plan.lanes, "lanes are on by default for gray");
    let (app, _) = step(
        &app,
        Command::StartRelease {
            template: v2,
            version: 2,
            strategy: Strategy::Gray,
            release_id: 2,
            now_ms: 0,
            plan: Some(Box::new((overrides, plan))),
        },
    )
    .unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 0,
        },
    );
    let file = turnout_engine::route_file(
        &[&app],
        &turnout_engine::NoInstances,
        Default::default(),
        1000,
    );
    let internal = file
        .routes
        .iter()
        .find(|r| r.host.as_deref() == Some("servicea.local"))
        .unwrap();
    let lane = |name: &str| {
        let l = &internal.lanes[name];
        (l.callers.clone(), l.services.clone())
    };
    assert_eq!(
        lane("new"),
        (
            vec!["serviceB-v2".to_string()],
            vec!["serviceA-v2".to_string()]
        )
    );
    assert_eq!(
        lane("old"),
        (
            vec!["serviceB-v1".to_string()],
            vec!["serviceA-v1".to_string()]
        )
    );
    // The router takes the table.
    turnout_routing::RouteTable::build(&file).unwrap();
    // The public route has no lanes; and without `lanes` in the plan, no
    // route has.
    assert!(
        file.routes
            .iter()
            .all(|r| r.internal == Some(true) || r.lanes.is_empty())
    );
    let mut off = app;
    if let Some(p) = off.release.as_mut().and_then(|r| r.progress.as_mut()) {
        p.plan.lanes = false;
    }
    let file = turnout_engine::route_file(
        &[&off],
        &turnout_engine::NoInstances,
        Default::default(),
        1000,
    );
    assert!(file.routes.iter().all(|r| r.lanes.is_empty()));
}

#[test]
fn verdicts_fail_pause_and_let_a_gated_step_move_on() {
    let gated = r#"{"strategy": "gray", "steps": [10, 100], "pause": "1s", "analysis": {"window": "1s", "max_error_rate": "1%"}}"#;
    let (app, _) = start(&hello(), gated).unwrap();
    let app = ok(
        &app,
        Command::Ready {
            release_id: 2,
            now_ms: 0,
        },
    );
    let verdict = |app: &App, verdict, failure: Option<&str>| {
        ok(
            app,
            Command::Analysed {
                release_id: 2,
                verdict,
                failure: failure.map(str::to_string),
            },
        )
    };
    // With gates, the pause alone does not move the step on.
    assert_eq!(
        ok(
            &app,
            Command::Tick {
                release_id: 2,
                now_ms: 5_000
            }
        ),
        app
    );
    // Inconclusive pauses; a passing window resumes it; then the pause
    // moves it on.
    let paused = verdict(&app, Verdict::Inconclusive, None);
    assert_eq!(state(&paused), ReleaseState::Paused);
    let progress = paused.release.as_ref().unwrap().progress.clone().unwrap();
    assert_eq!(progress.paused, Some(PauseReason::Inconclusive));
    assert_eq!(verdict(&paused, Verdict::Inconclusive, None), paused);
    let resumed = verdict(&paused, Verdict::Pass, None);
    assert_eq!(state(&resumed), ReleaseState::Progressing);
    let next = ok(
        &resumed,
        Command::Tick {
            release_id: 2,
            now_ms: 5_000,
        },
    );
    assert_eq!((step_index(&next), front(&next)), (Some(1), pair(0, 100)));
    // A failed check: failed with the gate in the reason (the reconciler
    // then rolls it back, keeping the reason).
    let failed = verdict(
        &next,
        Verdict::Fail,
        Some("analysis: max_error_rate: 50.00% > 1.00%"),
    );
    let r = failed.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::Failed);
    assert_eq!(
        r.reason.as_deref(),
        Some("failed: analysis: max_error_rate: 50.00% > 1.00%")
    );
    let back = ok(&failed, Command::Rollback);
    let r = back.release.as_ref().unwrap();
    assert_eq!(r.state, ReleaseState::RolledBack);
    assert!(r.reason.as_deref().unwrap().starts_with("failed: analysis"));
    // A manual pause is not resumed by a passing window.
    let manual = ok(&resumed, Command::Pause);
    assert_eq!(verdict(&manual, Verdict::Pass, None), manual);
}
