//! Golden tests for malformed templates: each `malformed/NN-name.yaml` is
//! parsed and the diagnostics, rendered as the CLI shows them, must equal
//! `malformed/NN-name.expected`. Every case must fail to parse.
//!
//! After an intended change of messages, regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p turnout-spec --test malformed` and review
//! the diff: each golden names the place (line:column and field path) and
//! the problem.

use std::path::Path;

fn render(file: &str, text: &str) -> String {
    let env = |name: &str| match name {
        "TAG" => Some(String::new()),
        _ => None,
    };
    match turnout_spec::parse(file, text, &env) {
        Ok(_) => panic!("{file}: parsed, but every malformed case must be refused"),
        Err(diagnostics) => {
            assert!(
                diagnostics.iter().any(|d| d.is_error()),
                "{file}: no error among the diagnostics"
            );
            let mut out = String::new();
            for d in diagnostics {
                out.push_str(&format!("{}: {d}\n", d.severity));
            }
            out
        }
    }
}

#[test]
fn malformed_templates_match_their_goldens() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/malformed");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 40, "only {} malformed cases", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(case).unwrap();
        let got = render(&name, &text);
        let golden = case.with_extension("expected");
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|_| {
            panic!("{} is missing; run with UPDATE_GOLDEN=1", golden.display())
        });
        if got != want {
            failures.push(format!("--- {name}\nwant:\n{want}got:\n{got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
