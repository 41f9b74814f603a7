//! What the docker runtime ignores of a template (DESIGN §6.1: "fields
//! that do nothing on this runtime warn, naming the field"). Everything
//! else of the container fields it honours, and says nothing about.

use turnout_runtime::RuntimeWarning;
use turnout_spec::Template;

/// `container_name` (instances are named `<app>-<service>-<n>`, so that
/// several instances and two versions run side by side) and top-level
/// `networks` (every service joins the app's one network).
pub fn warnings(template: &Template) -> Vec<RuntimeWarning> {
    let mut out = Vec::new();
    if !template.networks.is_empty() {
        out.push(RuntimeWarning {
            service: None,
            field: "networks".into(),
            message: "the docker runtime ignores top-level networks".into(),
            hint: "every service joins the app's one network, <app>_default, with its service \
                   name and its `aliases` as network aliases"
                .into(),
        });
    }
    for service in &template.services {
        if service.container.container_name.is_some() {
            out.push(RuntimeWarning {
                service: Some(service.name.clone()),
                field: "container_name".into(),
                message: "the docker runtime ignores container_name".into(),
                hint: "containers are named <app>-<service>-<n>, so that several instances \
                       and two versions of a service run side by side"
                    .into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_nothing_about_the_fields_it_honours() {
        let yaml = "services:\n  web:\n    image: shop:1\n    volumes: [\"data:/data\"]\n    \
                    user: '1000'\n    tmpfs: [/run]\n    entrypoint: [/bin/sh]\n    \
                    networks: { default: { aliases: [shop] } }\n    \
                    deploy: { resources: { limits: { memory: 64M } } }\nvolumes:\n  data: {}\n";
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        assert_eq!(warnings(&parsed.template), []);
    }

    #[test]
    fn names_the_docker_runtime_for_what_it_ignores() {
        let yaml = "services:\n  web:\n    image: shop:1\n    container_name: shop\n\
                    networks:\n  back: {}\n";
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        let got: Vec<String> = warnings(&parsed.template)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            got,
            [
                "the docker runtime ignores top-level networks",
                "service web: the docker runtime ignores container_name",
            ]
        );
    }
}
