//! Sources turn the outside world into a [`Snapshot`] of plain Kubernetes objects. The
//! manifests directory and the Kubernetes API produce the same thing, so every routing rule
//! can be exercised from YAML files. Sources never decide routing: that is `compile`'s job.

pub mod kube;
pub mod manifests;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};

use crate::diagnostic::Diagnostic;

/// Every object routing depends on, as one consistent picture.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub ingresses: Vec<Ingress>,
    pub ingress_classes: Vec<IngressClass>,
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub secrets: Vec<Secret>,
}

/// What a source publishes: the objects, and what it could not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    pub snapshot: Snapshot,
    pub diagnostics: Vec<Diagnostic>,
}
