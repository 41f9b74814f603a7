//! One module per CLI verb.

pub mod demo_app;
pub mod diff;
pub mod proxy;
pub mod serve;
pub mod up;
pub mod validate;
