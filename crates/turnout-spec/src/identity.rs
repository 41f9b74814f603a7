//! Service identity for diffing (DESIGN §2): the name plus a hash of the
//! normalised spec without the routing-share labels.

use sha2::{Digest, Sha256};

use crate::labels::ROUTING_SHARE_LABELS;
use crate::template::Service;

/// The hash part of a service's identity, as lowercase hex.
///
/// The hash covers every field as normalised by the parser (so list and
/// map spellings of the same environment hash alike) except the name and
/// the labels that only say how the service shares its routes.
pub fn spec_hash(service: &Service) -> String {
    let mut labels = service.labels.clone();
    for label in ROUTING_SHARE_LABELS {
        labels.remove(*label);
    }
    // serde_json writes struct fields in declaration order and BTreeMaps in
    // key order, so this text is canonical for a given model.
    let canonical = serde_json::json!({
        "image": service.image,
        "build": service.build,
        "command": service.command,
        "working_dir": service.working_dir,
        "environment": service.environment,
        "labels": labels,
        "external_links": service.external_links,
        "links": service.links,
        "restart": service.restart,
        "ports": service.ports,
        "healthcheck": service.healthcheck,
        "depends_on": service.depends_on,
        "replicas": service.replicas,
    });
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two services have the same identity.
pub fn same_identity(a: &Service, b: &Service) -> bool {
    a.name == b.name && spec_hash(a) == spec_hash(b)
}
