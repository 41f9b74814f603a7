//! What the process runtime ignores of a template: the container-only
//! fields (DESIGN §6.1, §7), named as the process runtime's.

use turnout_runtime::{RuntimeWarning, container_fields_set};
use turnout_spec::Template;

const HINT: &str =
    "the docker runtime (`--runtime docker`) honours it; on the process runtime it has no effect";

/// One warning per container-only field a service sets, and one per
/// top-level `volumes`/`networks` block.
pub fn warnings(template: &Template) -> Vec<RuntimeWarning> {
    let mut out = Vec::new();
    for (field, set) in [
        ("volumes", !template.volumes.is_empty()),
        ("networks", !template.networks.is_empty()),
    ] {
        if set {
            out.push(RuntimeWarning {
                service: None,
                field: field.to_string(),
                message: format!("the process runtime ignores top-level {field}"),
                hint: "the docker runtime (`--runtime docker`) creates them; on the process \
                       runtime they have no effect"
                    .to_string(),
            });
        }
    }
    for service in &template.services {
        let mut fields = container_fields_set(service);
        if service.settings.latest_image {
            fields.push("aliyun.latest_image");
        }
        for field in fields {
            out.push(RuntimeWarning {
                service: Some(service.name.clone()),
                field: field.to_string(),
                message: format!("the process runtime ignores {field}"),
                hint: HINT.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_process_runtime_and_each_field() {
        let yaml = "services:\n  web:\n    command: sleep 1\n    volumes: [\"data:/data\"]\n    \
                    user: '1000'\n    deploy: { resources: { limits: { memory: 64M } } }\n    \
                    labels: { aliyun.latest_image: true }\n  \
                    plain:\n    command: sleep 1\nvolumes:\n  data: {}\n";
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        let got: Vec<String> = warnings(&parsed.template)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "the process runtime ignores top-level volumes",
                "service web: the process runtime ignores deploy.resources",
                "service web: the process runtime ignores user",
                "service web: the process runtime ignores volumes",
                "service web: the process runtime ignores aliyun.latest_image",
            ]
        );
    }
}
