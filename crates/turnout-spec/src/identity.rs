//! Service identity for diffing (DESIGN §2): the name plus a hash of the
//! normalised spec without the routing-share labels.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::labels::ROUTING_SHARE_LABELS;
use crate::template::{
    Build, Command, ContainerSettings, Healthcheck, PortMapping, Restart, Service,
};

/// The hash part of a service's identity, as lowercase hex.
///
/// The hash covers every field as normalised by the parser (so list and
/// map spellings of the same environment hash alike) except the name and
/// the labels that only say how the service shares its routes.
pub fn spec_hash(service: &Service) -> String {
    let labels: BTreeMap<&str, &str> = service
        .labels
        .iter()
        .filter(|(k, _)| !ROUTING_SHARE_LABELS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let view = IdentityView {
        image: &service.image,
        build: &service.build,
        command: &service.command,
        working_dir: &service.working_dir,
        environment: &service.environment,
        labels,
        external_links: &service.external_links,
        links: &service.links,
        restart: &service.restart,
        ports: &service.ports,
        healthcheck: &service.healthcheck,
        depends_on: &service.depends_on,
        replicas: &service.replicas,
        container: &service.container,
    };
    let mut hasher = HashWriter(Sha256::new());
    // serde_json writes struct fields in declaration order and BTreeMaps in
    // key order, so the hashed text is canonical for a given model.
    serde_json::to_writer(&mut hasher, &view).expect("writing to a hasher cannot fail");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = hasher.0.finalize();
    let mut out = String::with_capacity(digest.len() * 2);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// The fields that make up a service's identity.
#[derive(Serialize)]
struct IdentityView<'a> {
    image: &'a Option<String>,
    build: &'a Option<Build>,
    command: &'a Option<Command>,
    working_dir: &'a Option<String>,
    environment: &'a BTreeMap<String, Option<String>>,
    labels: BTreeMap<&'a str, &'a str>,
    external_links: &'a [String],
    links: &'a [String],
    restart: &'a Option<Restart>,
    ports: &'a [PortMapping],
    healthcheck: &'a Option<Healthcheck>,
    depends_on: &'a [String],
    replicas: &'a Option<u32>,
    /// Left out when empty, so that a service that sets none of these
    /// fields keeps the hash it had before they were read (instances in a
    /// data dir are matched to their service by it). `env_file` is not
    /// here: its values are, in `environment`.
    #[serde(skip_serializing_if = "no_container_fields")]
    container: &'a ContainerSettings,
}

fn no_container_fields(c: &&ContainerSettings) -> bool {
    c.is_empty()
}

/// Feeds serialised bytes straight into the hash, without a buffer.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Whether two services have the same identity.
pub fn same_identity(a: &Service, b: &Service) -> bool {
    a.name == b.name && spec_hash(a) == spec_hash(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_without_container_fields_keeps_its_hash() {
        let text =
            "web:\n  command: run\n  environment: {A: b}\n  depends_on: [db]\ndb:\n  command: db\n";
        let parsed = crate::parse("a.yaml", text, &|_| None).unwrap();
        let s = &parsed.template.services[0];
        // The hash this service had before the container fields were read
        // (computed then, from the view without them): instances in a data
        // dir are matched to their service by it, so it must not change.
        const GOLDEN: &str = "00933423df37bd7e3cd90b7159f40ca68f0f3d9a391f66c406dbd9c73a6e48e3";
        assert_eq!(spec_hash(s), GOLDEN);
    }
}
