//! The state of one watcher (one kind in one namespace, or cluster-wide), logged once per
//! change: listed, failing (API down, forbidden, 410 Gone), recovered. Errors repeated while
//! already failing are logged at debug level only, so an outage is one warning, not a flood.

use kube::runtime::watcher;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The first list has not completed yet.
    Listing,
    /// Listed, and watching for changes.
    Synced,
    /// The last call failed; the watcher retries with backoff. The store keeps its objects.
    Failing,
    /// The watch expired (410 Gone) or was reset: the whole collection is listed again.
    Relisting,
}

#[derive(Debug)]
pub struct Health {
    what: String,
    state: State,
    listed_once: bool,
}

impl Health {
    pub fn new(what: String) -> Self {
        Self { what, state: State::Listing, listed_once: false }
    }

    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    pub fn listed_once(&self) -> bool {
        self.listed_once
    }

    /// Records a successful event and returns whether the store may have changed.
    pub fn event<K>(&mut self, event: &watcher::Event<K>) -> bool {
        let what = &self.what;
        match event {
            watcher::Event::Init => {
                if self.listed_once && self.state != State::Relisting {
                    tracing::info!(watch = %what, "listing again; the last good table keeps serving meanwhile");
                }
                if self.listed_once {
                    self.state = State::Relisting;
                }
                false
            }
            watcher::Event::InitApply(_) => false,
            watcher::Event::InitDone => {
                if !self.listed_once {
                    tracing::info!(watch = %what, "initial list complete");
                } else if self.state != State::Synced {
                    tracing::info!(watch = %what, "listed again; watch resumed");
                }
                self.listed_once = true;
                self.state = State::Synced;
                true
            }
            watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                if self.state == State::Failing {
                    tracing::info!(watch = %what, "watch resumed");
                }
                self.state = State::Synced;
                true
            }
        }
    }

    pub fn error(&mut self, err: &watcher::Error) {
        let what = &self.what;
        let gone = matches!(err, watcher::Error::WatchError(status) if status.code == 410);
        if gone {
            // Not an outage: the API compacted past our resource version. A relist follows.
            tracing::info!(watch = %what, "watch expired (410 Gone); listing again");
            self.state = State::Relisting;
            return;
        }
        if self.state == State::Failing {
            tracing::debug!(watch = %what, %err, "watch still failing");
            return;
        }
        tracing::warn!(
            watch = %what,
            %err,
            "watch failed; retrying with backoff, the last good table keeps serving"
        );
        self.state = State::Failing;
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::networking::v1::Ingress;

    use super::*;

    #[test]
    fn a_relist_after_failure_ends_synced() {
        let mut health = Health::new("ingresses".to_owned());
        assert!(!health.event::<Ingress>(&watcher::Event::Init));
        assert!(health.event::<Ingress>(&watcher::Event::InitDone));
        assert_eq!(health.state(), State::Synced);
        health.error(&watcher::Error::NoResourceVersion);
        assert_eq!(health.state(), State::Failing);
        health.error(&watcher::Error::NoResourceVersion);
        assert_eq!(health.state(), State::Failing);
        health.event::<Ingress>(&watcher::Event::Init);
        assert_eq!(health.state(), State::Relisting);
        health.event::<Ingress>(&watcher::Event::InitDone);
        assert_eq!(health.state(), State::Synced);
        assert!(health.listed_once());
    }
}
