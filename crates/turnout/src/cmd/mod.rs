//! One module per CLI verb, and the renderers they share (`render`).

pub mod completions;
pub mod confirm;
pub mod demo_app;
pub mod deploy;
pub mod diff;
pub mod history;
pub mod logs;
pub mod plan;
pub mod proxy;
pub mod ps;
pub mod release;
pub(crate) mod render;
pub mod report;
pub mod rollback;
pub mod routes;
pub mod serve;
pub mod status;
pub mod steps;
pub mod switch;
pub mod up;
pub mod validate;
pub mod weights;
