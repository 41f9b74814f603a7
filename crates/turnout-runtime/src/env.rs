//! The environment an instance gets (DESIGN §6): the server's own, then
//! the template's `environment`, then turnout's variables.

use std::collections::BTreeMap;

use turnout_spec::Service;

/// Hosts that bypass the proxy: loopback, in every spelling clients read.
pub const NO_PROXY: &str = "localhost,127.0.0.1,::1";

/// turnout's own variables for one instance:
///
/// - `PORT`: the host port of `primary_port`, when there is one;
/// - `PORT_<P>` for each container port P;
/// - `HTTP_PROXY` and `http_proxy`: `proxy_url`, the internal listener
///   with the instance's credentials
///   (`http://<service>:<token>@127.0.0.1:8081`),
///   when given;
/// - `NO_PROXY` and `no_proxy`: loopback, so an instance's calls to its
///   own ports do not go through the router;
/// - `TURNOUT_INSTANCE`: the instance id.
pub fn instance_env(
    ports: &BTreeMap<u16, u16>,
    primary_port: Option<u16>,
    proxy_url: Option<&str>,
    instance_id: &str,
) -> Vec<(String, String)> {
    let mut env = Vec::with_capacity(ports.len() + 6);
    if let Some(host) = primary_port.and_then(|p| ports.get(&p)) {
        env.push(("PORT".to_string(), host.to_string()));
    }
    for (container, host) in ports {
        env.push((format!("PORT_{container}"), host.to_string()));
    }
    if let Some(url) = proxy_url {
        env.push(("HTTP_PROXY".to_string(), url.to_string()));
        env.push(("http_proxy".to_string(), url.to_string()));
    }
    env.push(("NO_PROXY".to_string(), NO_PROXY.to_string()));
    env.push(("no_proxy".to_string(), NO_PROXY.to_string()));
    env.push(("TURNOUT_INSTANCE".to_string(), instance_id.to_string()));
    env
}

/// The template's `environment` as pairs. A bare `KEY` (no value) takes
/// the server's value, as compose does, and is left out when the server
/// has none.
pub fn template_env(service: &Service) -> Vec<(String, String)> {
    service
        .environment
        .iter()
        .filter_map(|(key, value)| match value {
            Some(v) => Some((key.clone(), v.clone())),
            None => std::env::var(key).ok().map(|v| (key.clone(), v)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn gives_ports_proxy_and_instance() {
        let ports = BTreeMap::from([(5000, 41000), (9000, 41001)]);
        let env = instance_env(
            &ports,
            Some(5000),
            Some("http://web-v1:tok-1@127.0.0.1:8081"),
            "web-v1.1",
        );
        assert_eq!(get(&env, "PORT"), Some("41000"));
        assert_eq!(get(&env, "PORT_5000"), Some("41000"));
        assert_eq!(get(&env, "PORT_9000"), Some("41001"));
        assert_eq!(
            get(&env, "HTTP_PROXY"),
            Some("http://web-v1:tok-1@127.0.0.1:8081")
        );
        assert_eq!(
            get(&env, "http_proxy"),
            Some("http://web-v1:tok-1@127.0.0.1:8081")
        );
        assert_eq!(get(&env, "NO_PROXY"), Some("localhost,127.0.0.1,::1"));
        assert_eq!(get(&env, "no_proxy"), Some("localhost,127.0.0.1,::1"));
        assert_eq!(get(&env, "TURNOUT_INSTANCE"), Some("web-v1.1"));
    }

    #[test]
    fn leaves_out_what_is_not_there() {
        let env = instance_env(&BTreeMap::new(), None, None, "job.1");
        assert_eq!(get(&env, "PORT"), None);
        assert_eq!(get(&env, "HTTP_PROXY"), None);
        assert_eq!(get(&env, "TURNOUT_INSTANCE"), Some("job.1"));
    }

    #[test]
    fn template_env_resolves_bare_keys_from_the_server() {
        let yaml = "services:\n  web:\n    command: run\n    environment:\n      A: one\n      \
                    PATH:\n      TURNOUT_SURELY_UNSET_VARIABLE:\n";
        let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
        let env = template_env(&parsed.template.services[0]);
        assert_eq!(get(&env, "A"), Some("one"));
        assert_eq!(get(&env, "PATH"), std::env::var("PATH").ok().as_deref());
        assert_eq!(get(&env, "TURNOUT_SURELY_UNSET_VARIABLE"), None);
    }
}
