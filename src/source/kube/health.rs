//! The state of one watcher (one kind in one namespace, or cluster-wide), logged once per
//! change: listed, failing (API down, forbidden, 410 Gone), recovered. Errors repeated while
//! already failing are logged at debug level only, so an outage is one warning, not a flood.
//!
//! Also what the metrics need: a watch that breaks (an error, or 410 Gone forcing a relist)
//! counts as one restart however many retries the outage takes, and every error has a bounded
//! kind.

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
    /// Set when the watch broke and has to start over; taken by [`Health::take_restart`].
    restarting: bool,
}

impl Health {
    pub fn new(what: String) -> Self {
        Self { what, state: State::Listing, listed_once: false, restarting: false }
    }

    /// Whether the last event or error began a restart of the watch (once per interruption:
    /// errors while already failing or relisting do not count again).
    pub fn take_restart(&mut self) -> bool {
        std::mem::take(&mut self.restarting)
    }

    /// Moves to `next`; leaving a working watch (listing or synced) for a failure or a relist
    /// is a restart.
    fn enter(&mut self, next: State) {
        let working = matches!(self.state, State::Listing | State::Synced);
        if working && matches!(next, State::Failing | State::Relisting) {
            self.restarting = true;
        }
        self.state = next;
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
                    self.enter(State::Relisting);
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
            self.enter(State::Relisting);
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
        self.enter(State::Failing);
    }
}

/// A bounded word for a watcher error, for `lintel_source_api_errors_total{kind}`.
pub fn watch_error_kind(err: &watcher::Error) -> &'static str {
    match err {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            api_error_kind(e)
        }
        watcher::Error::WatchError(status) => status_kind(status.code),
        watcher::Error::NoResourceVersion => "protocol",
    }
}

/// A bounded word for an error of any Kubernetes API call: the HTTP status class when the
/// API answered, else what failed on the way.
pub fn api_error_kind(err: &kube::Error) -> &'static str {
    match err {
        kube::Error::Api(status) => status_kind(status.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => "connection",
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) | kube::Error::LinesCodecMaxLineLengthExceeded => {
            "decode"
        }
        kube::Error::Auth(_) => "auth",
        _ => "other",
    }
}

fn status_kind(code: u16) -> &'static str {
    match code {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        410 => "gone",
        429 => "throttled",
        500..=599 => "server_error",
        _ => "other_status",
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

    #[test]
    fn an_outage_or_a_410_is_one_restart_however_many_retries() {
        let mut health = Health::new("ingresses".to_owned());
        health.event::<Ingress>(&watcher::Event::Init);
        health.event::<Ingress>(&watcher::Event::InitDone);
        assert!(!health.take_restart(), "the first list is no restart");
        health.error(&watcher::Error::NoResourceVersion);
        health.error(&watcher::Error::NoResourceVersion);
        health.event::<Ingress>(&watcher::Event::Init);
        assert!(health.take_restart());
        assert!(!health.take_restart());
        health.event::<Ingress>(&watcher::Event::InitDone);
        let gone = kube::core::Status { code: 410, ..Default::default() };
        health.error(&watcher::Error::WatchError(Box::new(gone)));
        assert!(health.take_restart());
        health.event::<Ingress>(&watcher::Event::Init);
        assert!(!health.take_restart(), "the relist after a 410 is the same restart");
    }

    #[test]
    fn error_kinds_are_bounded_words() {
        let status = |code| watcher::Error::WatchError(Box::new(kube::core::Status { code, ..Default::default() }));
        assert_eq!(watch_error_kind(&status(410)), "gone");
        assert_eq!(watch_error_kind(&status(403)), "forbidden");
        assert_eq!(watch_error_kind(&status(503)), "server_error");
        assert_eq!(watch_error_kind(&status(418)), "other_status");
        assert_eq!(watch_error_kind(&watcher::Error::NoResourceVersion), "protocol");
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(watch_error_kind(&watcher::Error::WatchFailed(kube::Error::ReadEvents(io))), "connection");
    }
}
