//! Lintel: a small, fast Kubernetes ingress reverse proxy.
//!
//! The flow, one module per stage: `source` (manifests directory or Kubernetes API) →
//! `compile` (pure: objects to a routing table) → `table` (immutable, swapped atomically) →
//! `proxy` (the data path) → `upstream` (endpoints and their pools). `control` drives the
//! rebuilds, `admin` serves the operator endpoints (`metrics`, `explain`), `ops` holds the
//! configuration report and the shutdown sequence, `run` wires it all together.

pub mod admin;
pub mod cluster;
pub mod compile;
pub mod config;
pub mod control;
pub mod diagnostic;
pub mod explain;
pub mod fixtures;
pub mod header_maps;
pub mod header_name;
pub mod kept_timer;
pub mod live;
pub mod metrics;
pub mod ops;
pub mod proxy;
pub mod report;
pub mod run;
pub mod source;
pub mod table;
pub mod tls;
pub mod upstream;
