//! Integration tests of the data plane over real sockets on 127.0.0.1,
//! one module per numbered item of the router issue.

mod support;

mod bad_input;
mod drain;
mod egress;
mod fast_path;
mod figures;
mod health;
mod internal;
mod lanes;
mod metrics;
mod namespaces;
mod protocols;
mod reload;
mod routing;
mod split;
mod timeouts;
