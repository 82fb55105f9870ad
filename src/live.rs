//! What the data path reads: one compiled table with the upstream groups bound to it,
//! published as a whole through one `ArcSwap` so a request never sees half a rebuild.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::compile::Compiled;
use crate::metrics::RouteIndex;
use crate::upstream::Group;

#[derive(Debug, Default)]
pub struct Live {
    pub compiled: Compiled,
    /// Indexed like `compiled.table.backends()`.
    pub groups: Vec<Arc<Group>>,
    /// Per-route metric handles of this table, resolved when it was bound.
    pub route_metrics: RouteIndex,
}

pub type SharedLive = Arc<ArcSwap<Live>>;
