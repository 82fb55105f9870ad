//! Path rules and matching within one host, per the Ingress spec: `Exact` compares the whole
//! path, `Prefix` compares whole `/`-separated elements. Longest match wins; on a tie Exact
//! beats Prefix. Lookups cost one hash probe per path element, whatever the number of routes.

use std::collections::hash_map::Entry;

use super::{Route, VirtualHost};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum PathKind {
    Exact,
    Prefix,
}

/// A path as written in an Ingress, and the key it is matched by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PathRule {
    /// Normalised: for Prefix, no trailing `/` (the root prefix is empty).
    key: Box<str>,
    kind: PathKind,
    written: Box<str>,
}

impl PathRule {
    /// `path` must start with `/` (compile checks that). A Prefix `/foo/` is the same rule as
    /// `/foo`: element-wise they match the same requests.
    pub fn new(written: &str, kind: PathKind) -> Self {
        let key = match kind {
            PathKind::Exact => written,
            PathKind::Prefix => written.trim_end_matches('/'),
        };
        Self { key: key.into(), kind, written: written.into() }
    }

    /// A Prefix rule whose display differs from its match key (ALB-style `/foo/*`).
    pub fn prefix_written_as(prefix: &str, written: &str) -> Self {
        Self { written: written.into(), ..Self::new(prefix, PathKind::Prefix) }
    }

    pub fn path(&self) -> &str {
        &self.written
    }

    /// What the rule matches by: for Prefix, without its trailing `/`.
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn kind(&self) -> PathKind {
        self.kind
    }

    /// Whether this rule matches `path` (the slow, obvious way; lookups use the hash maps).
    pub fn matches(&self, path: &str) -> bool {
        match self.kind {
            PathKind::Exact => path == &*self.key,
            PathKind::Prefix => match path.strip_prefix(&*self.key) {
                Some(rest) => rest.is_empty() || rest.starts_with('/'),
                None => false,
            },
        }
    }
}

/// Which key lengths a map holds (a bit per length below 64, one flag for all longer ones).
/// Most hosts have a few short prefixes: a request path's longer candidates skip the hash.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lengths {
    short: u64,
    long: bool,
}

impl Lengths {
    fn add(&mut self, len: usize) {
        if len < 64 { self.short |= 1 << len } else { self.long = true }
    }

    fn may_hold(self, len: usize) -> bool {
        if len < 64 { self.short & (1 << len) != 0 } else { self.long }
    }
}

impl VirtualHost {
    pub(super) fn insert(&mut self, route: Route) -> Result<(), &Route> {
        let (map, lengths) = match route.rule.kind {
            PathKind::Exact => (&mut self.exact, &mut self.exact_lengths),
            PathKind::Prefix => (&mut self.prefix, &mut self.prefix_lengths),
        };
        match map.entry(route.rule.key.clone()) {
            Entry::Occupied(existing) => Err(existing.into_mut()),
            Entry::Vacant(slot) => {
                lengths.add(route.rule.key.len());
                slot.insert(route);
                Ok(())
            }
        }
    }

    /// The best route for `path`: an Exact match is always the longest possible match, so it
    /// is tried first; then each element prefix of the path, longest first.
    pub fn find(&self, path: &str) -> Option<&Route> {
        if self.exact_lengths.may_hold(path.len())
            && let Some(route) = self.exact.get(path)
        {
            return Some(route);
        }
        if self.prefix.is_empty() {
            return None;
        }
        if !path.ends_with('/')
            && self.prefix_lengths.may_hold(path.len())
            && let Some(route) = self.prefix.get(path)
        {
            return Some(route);
        }
        // Each `/` ends a candidate prefix; the one at index 0 gives the root prefix "".
        let bytes = path.as_bytes();
        let mut end = bytes.len();
        while let Some(i) = bytes.get(..end).and_then(|b| b.iter().rposition(|&c| c == b'/')) {
            if self.prefix_lengths.may_hold(i)
                && let Some(route) = path.get(..i).and_then(|candidate| self.prefix.get(candidate))
            {
                return Some(route);
            }
            end = i;
        }
        None
    }
}
