//! Release plans (DESIGN §8): the `x-turnout.release` block read through
//! the public `parse`, its defaults, every bad plan with its place, path,
//! message and hint, the flags on top (`ReleasePlan::with_overrides`), the
//! checks against the old template, and the schedule `turnout plan` prints.

use turnout_spec::plan::{AbBlock, AnalysisBlock, Millis, Pause, Rate, parse_rate};
use turnout_spec::{
    DEFAULT_DOMAIN, Diagnostic, OnSuccess, Parsed, ReleaseBlock, ReleasePlan, Schedule, Severity,
    Strategy, parse, to_yaml,
};

const SERVICES: &str = "\
services:
  web-v1:
    command: run web
    labels:
      aliyun.scale: 3
      aliyun.routing.port_80: web
  api-v2:
    command: run api
    labels:
      aliyun.scale: 2
      aliyun.routing.port_80: api.local
";

fn with_block(block: &str) -> String {
    format!("{SERVICES}x-turnout:\n  release:\n{block}")
}

#[track_caller]
fn ok(text: &str) -> Parsed {
    match parse("app.yaml", text, &|_| None) {
        Ok(p) => p,
        Err(d) => panic!("expected a valid template, got:\n{}", show(&d)),
    }
}

#[track_caller]
fn problems(text: &str) -> Vec<Diagnostic> {
    match parse("app.yaml", text, &|_| None) {
        Ok(p) => panic!(
            "expected errors, got a valid template: {:?}",
            p.template.release
        ),
        Err(d) => d,
    }
}

fn show(d: &[Diagnostic]) -> String {
    d.iter().map(|d| format!("{d}\n")).collect()
}

/// The one error of `block`, rendered, and nothing else wrong.
#[track_caller]
fn one_error(block: &str) -> String {
    let d = problems(&with_block(block));
    let errors: Vec<&Diagnostic> = d.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{}", show(&d));
    errors[0].to_string()
}

fn plan_of(text: &str) -> ReleasePlan {
    let p = ok(text);
    ReleasePlan::with_overrides(&p.template, &p.plan_spans, &ReleaseBlock::default())
        .unwrap()
        .plan
}

#[test]
fn no_block_is_the_blue_green_plan_with_every_default() {
    let plan = plan_of(SERVICES);
    assert_eq!(plan.strategy, Strategy::BlueGreen);
    assert!(plan.shares().is_empty());
    assert_eq!(plan.steps, [10, 50, 100]);
    assert_eq!(plan.pause, Pause::For(Millis(30_000)));
    assert_eq!(plan.analysis.window, Millis(30_000));
    assert_eq!(plan.analysis.min_requests, 100);
    assert!(!plan.analysis.has_gates(), "every gate is off unless set");
    assert_eq!(plan.ab.share, 50);
    assert_eq!(plan.canary.scale, 1);
    assert_eq!(plan.on_success, OnSuccess::PendingConfirmation);
    assert!(!plan.lanes, "lanes are on for gray and canary only");
    assert_eq!(ok(SERVICES).template.release, None);
}

#[test]
fn lanes_default_on_for_gray_and_canary() {
    for (strategy, lanes) in [
        ("gray", true),
        ("canary", true),
        ("ab-test", false),
        ("standard", false),
    ] {
        let plan = plan_of(&with_block(&format!("    strategy: {strategy}\n")));
        assert_eq!(plan.lanes, lanes, "{strategy}");
    }
    let plan = plan_of(&with_block("    strategy: gray\n    lanes: false\n"));
    assert!(!plan.lanes);
}

#[test]
fn a_full_gray_block_reads_with_its_units() {
    let plan = plan_of(&with_block(
        "    strategy: gray
    steps: [10, 50, 100]
    pause: 1m
    analysis:
      window: 10s
      min_requests: 20
      max_error_rate: 1%
      max_error_increase: 0.005
      max_p99: 500ms
      max_p99_increase: 100ms
      prometheus: { url: 'http://prom:9090', query: 'sum(up)', max: 5 }
    on_success: confirm
",
    ));
    assert_eq!(plan.strategy, Strategy::Gray);
    assert_eq!(plan.shares(), [10, 50, 100]);
    assert_eq!(plan.pause, Pause::For(Millis(60_000)));
    let a = &plan.analysis;
    assert_eq!(a.window, Millis(10_000));
    assert_eq!(a.min_requests, 20);
    assert_eq!(a.max_error_rate, Some(parse_rate("0.01").unwrap()));
    assert_eq!(a.max_error_increase.map(Rate::ppm), Some(5000));
    assert_eq!(a.max_p99, Some(Millis(500)));
    assert_eq!(a.max_p99_increase, Some(Millis(100)));
    assert_eq!(a.prometheus.as_ref().unwrap().max.0, 5.0);
    assert_eq!(plan.on_success, OnSuccess::Confirm);
    assert_eq!(
        a.gates(),
        [
            "max_error_rate: 1%",
            "max_error_increase: 0.5%",
            "max_p99: 500ms",
            "max_p99_increase: 100ms",
            "prometheus: sum(up) <= 5"
        ]
    );
}

#[test]
fn the_block_writes_back_and_reads_back_equal() {
    let text = with_block(
        "    strategy: ab-test
    pause: until-promoted
    analysis: { max_error_rate: 0.5%, prometheus: { url: 'http://p', query: 'x{a=\"$$b\"}', max: 0.25 } }
    ab:
      rules: [{ match: { header: { X-Variant: b }, cookie: { beta: '1' } }, service: api-v2 }]
      share: 20
      goal: { path: /checkout, status: 2xx }
",
    );
    let first = ok(&text).template;
    assert!(first.release.is_some());
    let again = ok(&to_yaml(&first)).template;
    assert_eq!(again, first);
    let seed = "web:\n  command: run\nx-turnout: { release: { strategy: canary, canary: { share: 10 } } }\n";
    let t = ok(seed).template;
    assert_eq!(ok(&to_yaml(&t)).template, t);
}

#[test]
fn an_unknown_strategy_is_an_error_with_did_you_mean() {
    assert_eq!(
        one_error("    strategy: grey\n"),
        "app.yaml:14:15: x-turnout.release.strategy: unknown strategy \"grey\"\n  hint: did you mean \"gray\"?"
    );
    assert!(
        one_error("    strategy: rainbow\n")
            .contains("hint: a strategy is one of blue-green, standard, canary, gray, ab-test")
    );
}

#[test]
fn steps_must_increase_and_stay_within_1_to_100() {
    assert_eq!(
        one_error("    strategy: gray\n    steps: [10, 50, 40]\n"),
        "app.yaml:15:21: x-turnout.release.steps[2]: the steps do not increase: 40 comes after 50\n  hint: list the shares in increasing order, e.g. [10, 50, 100]"
    );
    assert!(
        one_error("    strategy: gray\n    steps: [10, 150]\n").starts_with(
            "app.yaml:15:17: x-turnout.release.steps[1]: the step 150 is outside 1..100"
        )
    );
    assert!(
        one_error("    strategy: gray\n    steps: [0, 50]\n")
            .contains("steps[0]: the step 0 is outside 1..100")
    );
    assert!(one_error("    strategy: gray\n    steps: []\n").contains("steps: no steps"));
    assert!(one_error("    strategy: gray\n    steps: 50\n").contains("steps must be a list"));
    assert!(
        one_error("    strategy: gray\n    steps: [10, -5]\n").contains("steps[1]: invalid step")
    );
}

#[test]
fn shares_outside_0_to_100_are_errors() {
    assert_eq!(
        one_error("    strategy: canary\n    canary: { share: 120 }\n"),
        "app.yaml:15:22: x-turnout.release.canary.share: the share 120 is outside 0..100\n  hint: a share is a percentage of the route's traffic: a whole number from 0 to 100"
    );
    assert!(
        one_error("    strategy: ab-test\n    ab: { share: 101, goal: { path: /x } }\n")
            .contains("x-turnout.release.ab.share: the share 101 is outside 0..100")
    );
}

#[test]
fn a_duration_needs_its_unit() {
    assert_eq!(
        one_error("    strategy: gray\n    pause: 30\n"),
        "app.yaml:15:12: x-turnout.release.pause: the duration \"30\" has no unit: found the number 30\n  hint: write a whole number with its unit: `500ms`, `30s` or `2m`; e.g. `30s`, or `until-promoted` to wait for `turnout promote`"
    );
    assert!(
        one_error("    strategy: gray\n    analysis: { window: 10 }\n")
            .contains("analysis.window: the duration \"10\" has no unit")
    );
    assert!(
        one_error("    strategy: gray\n    analysis: { max_p99: 2h }\n")
            .contains("analysis.max_p99: unknown duration unit \"h\"")
    );
}

#[test]
fn a_rate_above_100_percent_or_negative_is_an_error() {
    assert!(
        one_error("    strategy: gray\n    analysis: { max_error_rate: 150% }\n")
            .contains("analysis.max_error_rate: the rate \"150%\" is above 100 %")
    );
    assert!(
        one_error("    strategy: gray\n    analysis: { max_error_rate: -1% }\n")
            .contains("analysis.max_error_rate: the rate \"-1%\" is negative")
    );
    let e = one_error("    strategy: gray\n    analysis: { max_error_increase: 2 }\n");
    assert!(e.contains("the rate 2 is above 100 %"), "{e}");
    assert!(e.contains("for 2 percent write `2%`"), "{e}");
}

#[test]
fn an_ab_goal_needs_a_path() {
    assert_eq!(
        one_error("    strategy: ab-test\n    ab:\n      goal: { status: 2xx }\n"),
        "app.yaml:16:13: x-turnout.release.ab.goal: the A/B goal has no path\n  hint: give the path a conversion reaches, e.g. `goal: { path: /checkout, status: 2xx }`"
    );
    assert!(
        one_error("    strategy: ab-test\n    ab: { goal: { path: checkout } }\n")
            .contains("does not start with /")
    );
    assert!(
        one_error("    strategy: ab-test\n    ab: { goal: { path: /c, status: 7xx } }\n")
            .contains("ab.goal.status: \"7xx\" is not a status")
    );
}

#[test]
fn ab_rules_must_name_a_service_of_the_template() {
    assert_eq!(
        one_error(
            "    strategy: ab-test\n    ab:\n      goal: { path: /c }\n      rules:\n        - match: { header: { x-variant: b } }\n          service: api-v3\n"
        ),
        "app.yaml:19:20: x-turnout.release.ab.rules[0].service: the A/B rule names service \"api-v3\", which the template does not have\n  hint: did you mean \"api-v2\"?"
    );
    assert!(
        one_error(
            "    strategy: ab-test\n    ab: { goal: { path: /c }, rules: [{ service: api-v2 }] }\n"
        )
        .contains("the A/B rule has no match")
    );
}

#[test]
fn a_canary_scale_above_every_service_is_an_error() {
    assert_eq!(
        one_error("    strategy: canary\n    canary: { share: 5, scale: 4 }\n"),
        "app.yaml:15:32: x-turnout.release.canary.scale: the canary's scale 4 is above the scale of every service of the template (at most 3)\n  hint: a canary runs some of the new service's instances: give a scale at most the service's own"
    );
    assert!(
        one_error("    strategy: canary\n    canary: { scale: 0 }\n")
            .contains("the canary's scale is 0")
    );
    plan_of(&with_block(
        "    strategy: canary\n    canary: { scale: 3 }\n",
    ));
}

#[test]
fn the_canary_scale_is_checked_against_the_new_service_with_the_old_template() {
    let old = ok("services:\n  web-v1:\n    command: run\n    labels: { aliyun.scale: 3, aliyun.routing.port_80: web }\n").template;
    let new_text = "services:\n  web-v2:\n    command: run2\n    labels: { aliyun.scale: 2, aliyun.routing.port_80: web }\n  other:\n    command: x\n    labels: { aliyun.scale: 5 }\nx-turnout: { release: { strategy: canary, canary: { scale: 3 } } }\n";
    let new = ok(new_text);
    // From the new template alone, 3 is within `other`'s scale.
    let plan =
        ReleasePlan::with_overrides(&new.template, &new.plan_spans, &ReleaseBlock::default())
            .unwrap()
            .plan;
    let problems = plan.check_release(&old, &new.template, DEFAULT_DOMAIN);
    assert_eq!(problems.len(), 1, "{}", show(&problems));
    assert!(problems[0].to_string().contains(
        "x-turnout.release.canary.scale: the canary's scale 3 is above the scale of web-v2, the new service (2)"
    ), "{}", problems[0]);
    let same = plan.check_release(&new.template, &new.template, DEFAULT_DOMAIN);
    assert!(same[0].message.contains("starts none"), "{}", show(&same));
}

#[test]
fn a_field_of_another_strategy_warns() {
    let p = ok(&with_block("    strategy: canary\n    steps: [10, 50]\n"));
    assert_eq!(p.warnings.len(), 1, "{}", show(&p.warnings));
    let w = &p.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(
        w.to_string(),
        "app.yaml:15:12: x-turnout.release.steps: steps is for gray releases; a canary release ignores it\n  hint: remove it, or release with strategy gray"
    );
    let p = ok(&with_block("    pause: 10s\n"));
    assert!(
        p.warnings[0]
            .message
            .contains("a blue-green release ignores it")
    );
}

#[test]
fn unknown_fields_of_the_block_are_errors_with_did_you_mean() {
    assert!(
        one_error("    strategy: gray\n    stesp: [10]\n").contains(
            "unknown field \"stesp\" in x-turnout.release: expected one of strategy, steps"
        )
    );
    assert!(
        one_error("    strategy: gray\n    analysis: { max_p95: 1s }\n")
            .contains("did you mean \"max_p99\"?")
    );
    let d = problems(&format!("{SERVICES}x-turnout:\n  relase: {{}}\n"));
    assert!(
        d[0].to_string().contains("hint: did you mean \"release\"?"),
        "{}",
        show(&d)
    );
}

#[test]
fn plan_errors_come_with_the_templates_other_problems() {
    let text = "services:\n  web:\n    comand: run\nx-turnout:\n  release:\n    strategy: gray\n    steps: [50, 10]\n    pause: 5\n";
    let d = problems(text);
    let rendered: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 3, "{}", show(&d));
    assert!(
        rendered[0].contains("web.comand: unknown field \"comand\""),
        "{}",
        rendered[0]
    );
    assert!(
        rendered[1].contains("7:17: x-turnout.release.steps[1]: the steps do not increase"),
        "{}",
        rendered[1]
    );
    assert!(
        rendered[2].contains("8:12: x-turnout.release.pause"),
        "{}",
        rendered[2]
    );
}

#[test]
fn overrides_win_over_the_block_and_their_problems_name_the_flag() {
    let p = ok(&with_block(
        "    strategy: gray\n    steps: [10, 50, 100]\n    pause: 1m\n",
    ));
    let overrides = ReleaseBlock {
        steps: Some(vec![25, 100]),
        analysis: Some(AnalysisBlock {
            window: Some(Millis(5000)),
            max_p99: Some(Millis(300)),
            ..AnalysisBlock::default()
        }),
        ..ReleaseBlock::default()
    };
    let r = ReleasePlan::with_overrides(&p.template, &p.plan_spans, &overrides).unwrap();
    assert_eq!(r.plan.shares(), [25, 100]);
    assert_eq!(
        r.plan.pause,
        Pause::For(Millis(60_000)),
        "the block's pause stays"
    );
    assert_eq!(r.plan.analysis.window, Millis(5000));
    assert_eq!(r.plan.analysis.max_p99, Some(Millis(300)));

    let bad = ReleaseBlock {
        steps: Some(vec![50, 20]),
        ab: Some(AbBlock {
            share: Some(300),
            ..AbBlock::default()
        }),
        ..ReleaseBlock::default()
    };
    let d = ReleasePlan::with_overrides(&p.template, &p.plan_spans, &bad).unwrap_err();
    let rendered: Vec<String> = d.iter().map(|d| d.to_string()).collect();
    assert!(rendered.contains(&"flags: --steps: the steps do not increase: 20 comes after 50\n  hint: list the shares in increasing order, e.g. [10, 50, 100]".to_string()), "{rendered:?}");
    assert!(
        rendered
            .iter()
            .any(|r| r.starts_with("flags: --ab-share: the share 300 is outside 0..100")),
        "{rendered:?}"
    );
    // --ab-share with gray is also a field of another strategy.
    assert!(
        rendered
            .iter()
            .any(|r| r.starts_with("flags: --ab-share: ab.share is for ab-test releases")),
        "{rendered:?}"
    );

    let canary = ReleaseBlock {
        strategy: Some(Strategy::Canary),
        ..ReleaseBlock::default()
    };
    let r = ReleasePlan::with_overrides(&p.template, &p.plan_spans, &canary).unwrap();
    assert_eq!(r.plan.shares(), [5]);
    assert_eq!(r.warnings.len(), 1, "{}", show(&r.warnings));
    assert_eq!(
        r.warnings[0].to_string(),
        "app.yaml:15:12: x-turnout.release.steps: steps is for gray releases; a canary release ignores it\n  hint: remove it, or release with strategy gray"
    );
}

#[test]
fn overrides_read_from_json_refuse_unknown_fields() {
    let o: ReleaseBlock = serde_json::from_str(
        r#"{"strategy": "gray", "steps": [10, 100], "pause": "until-promoted", "analysis": {"max_error_rate": 0.02}, "ab": {"goal": {"path": "/x"}}}"#,
    )
    .unwrap();
    assert_eq!(o.strategy, Some(Strategy::Gray));
    assert_eq!(o.pause, Some(Pause::UntilPromoted));
    let analysis = o.analysis.clone().unwrap();
    assert_eq!(analysis.max_error_rate.unwrap().to_string(), "2%");
    assert_eq!(o.ab.unwrap().goal.unwrap().path, "/x");
    assert!(serde_json::from_str::<ReleaseBlock>(r#"{"stpes": [1]}"#).is_err());
    assert!(serde_json::from_str::<ReleaseBlock>(r#"{"canary_share": 5}"#).is_err());
    let e = serde_json::from_str::<ReleaseBlock>(r#"{"analysis": {"window": "30"}}"#).unwrap_err();
    assert!(e.to_string().contains("has no unit"), "{e}");
}

#[test]
fn a_block_over_another_wins_field_by_field() {
    let base = ReleaseBlock {
        strategy: Some(Strategy::Gray),
        pause: Some(Pause::For(Millis(1000))),
        analysis: Some(AnalysisBlock {
            window: Some(Millis(2000)),
            max_p99: Some(Millis(100)),
            ..AnalysisBlock::default()
        }),
        ab: Some(AbBlock {
            goal: Some(turnout_spec::GoalSpec {
                path: "/a".into(),
                status: Some("201".into()),
            }),
            ..AbBlock::default()
        }),
        ..ReleaseBlock::default()
    };
    let flags = ReleaseBlock {
        analysis: Some(AnalysisBlock {
            window: Some(Millis(5000)),
            ..AnalysisBlock::default()
        }),
        ab: Some(AbBlock {
            goal: Some(turnout_spec::GoalSpec {
                path: "/b".into(),
                status: None,
            }),
            ..AbBlock::default()
        }),
        ..ReleaseBlock::default()
    };
    let merged = flags.over(&base);
    assert_eq!(merged.strategy, Some(Strategy::Gray));
    assert_eq!(merged.pause, Some(Pause::For(Millis(1000))));
    let analysis = merged.analysis.clone().unwrap();
    assert_eq!(analysis.window, Some(Millis(5000)), "the flag wins");
    assert_eq!(analysis.max_p99, Some(Millis(100)), "the template's stays");
    let goal = merged.ab.unwrap().goal.unwrap();
    assert_eq!(
        (goal.path.as_str(), goal.status.as_deref()),
        ("/b", Some("201"))
    );
    assert_eq!(ReleaseBlock::default().over(&base), base);
    assert!(ReleaseBlock::default().is_empty() && !flags.is_empty());
}

#[test]
fn the_schedule_gives_each_step_on_each_route_and_the_least_times() {
    let p = ok(&with_block(
        "    strategy: gray\n    steps: [10, 50, 100]\n    pause: 20s\n    analysis: { window: 30s, max_error_rate: 1% }\n",
    ));
    let plan = ReleasePlan::with_overrides(&p.template, &p.plan_spans, &ReleaseBlock::default())
        .unwrap()
        .plan;
    let s = Schedule::new(&plan, &p.template, None, DEFAULT_DOMAIN);
    assert_eq!(s.steps.len(), 3);
    let routes: Vec<(&str, u8, u8)> = s.steps[1]
        .routes
        .iter()
        .map(|r| (r.route.as_str(), r.new, r.old))
        .collect();
    assert_eq!(routes, [("api.local", 50, 50), ("web.localhost", 50, 50)]);
    // Each step holds for max(pause, one window): 3 × 30 s.
    assert_eq!(s.min_promote_ms, Some(90_000));
    assert_eq!(s.min_rollback_ms, Some(30_000));
    assert_eq!(s.then, "pending-confirmation");

    let manual = ReleaseBlock {
        pause: Some(Pause::UntilPromoted),
        ..ReleaseBlock::default()
    };
    let plan = ReleasePlan::with_overrides(&p.template, &p.plan_spans, &manual)
        .unwrap()
        .plan;
    assert_eq!(
        Schedule::new(&plan, &p.template, None, DEFAULT_DOMAIN).min_promote_ms,
        None
    );

    // No gate: the pause alone, and nothing rolls back by itself.
    let p = ok(&with_block(
        "    strategy: gray\n    steps: [50, 100]\n    pause: 20s\n",
    ));
    let plan = ReleasePlan::with_overrides(&p.template, &p.plan_spans, &ReleaseBlock::default())
        .unwrap()
        .plan;
    let s = Schedule::new(&plan, &p.template, None, DEFAULT_DOMAIN);
    assert_eq!(s.min_promote_ms, Some(40_000));
    assert_eq!(s.min_rollback_ms, None);
    assert_eq!(s.steps[0].window, None);
}

#[test]
fn with_the_old_template_the_schedule_lists_the_shared_routes_only() {
    let old =
        ok("services:\n  web-v1:\n    command: run\n    labels: { aliyun.routing.port_80: web }\n")
            .template;
    let new = ok(
        "services:\n  web-v2:\n    command: run2\n    labels: { aliyun.routing.port_80: web }\n  admin:\n    command: a\n    labels: { aliyun.routing.port_80: admin }\nx-turnout: { release: { strategy: canary } }\n",
    );
    let plan =
        ReleasePlan::with_overrides(&new.template, &new.plan_spans, &ReleaseBlock::default())
            .unwrap()
            .plan;
    let s = Schedule::new(&plan, &new.template, Some(&old), DEFAULT_DOMAIN);
    assert!(s.routes_from_diff);
    assert_eq!(s.steps.len(), 1);
    let r = &s.steps[0].routes;
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].route.as_str(), r[0].services.clone(), r[0].new),
        ("web.localhost", vec!["web-v2".to_string()], 5)
    );
}
