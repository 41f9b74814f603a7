//! Times parsing of a generated template with many services.
//!
//! `cargo run --release -p turnout-spec --example parse_bench -- [SERVICES] [ROUNDS]`
//! (bench/parse.sh runs it). Prints the file size, then the minimum, median
//! and maximum wall time of a full `parse` (YAML, substitution, labels,
//! cross-service checks) over the rounds, and the same for `diff` of the
//! template against a copy of itself with one service renamed.

use std::fmt::Write;
use std::time::{Duration, Instant};

fn template(services: usize) -> String {
    let mut t = String::from(
        "x-common: &common\n  restart: always\n  environment:\n    LOG_LEVEL: info\n    dep_endpoint: http://svc0.local\n  external_links:\n    - svc0.local\n",
    );
    for i in 0..services {
        let _ = write!(
            t,
            "svc{i}-v1:\n  <<: *common\n  command: turnout demo-app --text 'service {i}'\n  labels:\n    aliyun.scale: {}\n    aliyun.routing.port_5000: svc{i}{}\n    aliyun.probe.url: http://container:5000/health\n    aliyun.probe.timeout_seconds: 2\n",
            1 + i % 3,
            if i == 0 { ".local" } else { "" },
        );
    }
    t
}

fn stats(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "min {:.1} ms  median {:.1} ms  max {:.1} ms",
        ms(samples[0]),
        ms(samples[samples.len() / 2]),
        ms(samples[samples.len() - 1])
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let services: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(11);
    let text = template(services);
    let env = |_: &str| None;
    let mut parse_times = Vec::new();
    let mut parsed = None;
    for _ in 0..rounds {
        let start = Instant::now();
        let p =
            turnout_spec::parse("bench.yaml", &text, &env).expect("generated template is valid");
        parse_times.push(start.elapsed());
        parsed = Some(p);
    }
    // The YAML parser alone, into nothing: the floor under `parse`.
    let mut yaml_times = Vec::new();
    for _ in 0..rounds {
        let mut options = serde_saphyr::Options::default();
        let mut budget = serde_saphyr::Budget::default();
        budget.enforce_alias_anchor_ratio = false;
        options.budget = Some(budget);
        let start = Instant::now();
        let _: serde::de::IgnoredAny =
            serde_saphyr::from_str_with_options(&text, options).expect("valid YAML");
        yaml_times.push(start.elapsed());
    }
    let template = parsed.expect("at least one round").template;
    assert_eq!(template.services.len(), services);
    let mut renamed = template.clone();
    renamed.services[0].name = "svc0-v2".into();
    let mut diff_times = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let d = turnout_spec::diff(&template, &renamed, "localhost");
        diff_times.push(start.elapsed());
        assert_eq!(d.services.len(), services + 1);
    }
    println!(
        "template: {services} services, {} KiB, {rounds} rounds",
        text.len() / 1024
    );
    println!("parse: {}", stats(parse_times));
    println!(
        "yaml:  {}  (serde-saphyr alone, for reference)",
        stats(yaml_times)
    );
    println!("diff:  {}", stats(diff_times));
}
