//! Sources turn the outside world into a [`Snapshot`] of plain Kubernetes objects. The
//! manifests directory and the Kubernetes API produce the same thing, so every routing rule
//! can be exercised from YAML files. Sources never decide routing: that is `compile`'s job.

pub mod kube;
pub mod manifests;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::diagnostic::Diagnostic;

/// Every object routing depends on, as one consistent picture.
///
/// Objects are shared (`Arc`), never modified once read: a source keeps what it read and
/// publishes the same objects, so a picture costs one copy of them, not one per holder.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub ingresses: Vec<Arc<Ingress>>,
    pub ingress_classes: Vec<Arc<IngressClass>>,
    pub services: Vec<Arc<Service>>,
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    pub secrets: Vec<Arc<Secret>>,
}

/// What a source publishes: the objects, and what it could not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub diagnostics: Vec<Diagnostic>,
}
