//! Coalescing: a burst of watch events becomes one rebuild. After the first event we wait
//! until the stream has been quiet for `debounce`, but never longer than `max_delay`, so a
//! steady trickle of changes (endpoints churning) cannot postpone a rebuild forever.

use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settle {
    /// Quiet time that ends a burst.
    pub debounce: Duration,
    /// Longest wait after the first event of a burst.
    pub max_delay: Duration,
}

impl Default for Settle {
    fn default() -> Self {
        Self { debounce: Duration::from_millis(50), max_delay: Duration::from_millis(250) }
    }
}

impl Settle {
    /// Returns once a burst that started before the call (a permit already stored in `wake`)
    /// or during it has settled. Waits for the burst's first event first.
    pub async fn next_burst(&self, wake: &Notify) {
        wake.notified().await;
        let limit = Instant::now() + self.max_delay;
        loop {
            let quiet_until = (Instant::now() + self.debounce).min(limit);
            tokio::select! {
                () = wake.notified() => {
                    if Instant::now() >= limit {
                        return;
                    }
                }
                () = sleep_until(quiet_until) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn settle() -> Settle {
        Settle { debounce: Duration::from_millis(50), max_delay: Duration::from_millis(250) }
    }

    #[tokio::test(start_paused = true)]
    async fn one_event_settles_after_the_debounce() {
        let wake = Notify::new();
        wake.notify_one();
        let started = Instant::now();
        settle().next_burst(&wake).await;
        assert_eq!(started.elapsed(), Duration::from_millis(50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_extends_the_wait_until_quiet() {
        let wake = Arc::new(Notify::new());
        wake.notify_one();
        let poker = wake.clone();
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                poker.notify_one();
            }
        });
        let started = Instant::now();
        settle().next_burst(&wake).await;
        assert_eq!(started.elapsed(), Duration::from_millis(90 + 50));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_trickle_cannot_delay_past_max_delay() {
        let wake = Arc::new(Notify::new());
        wake.notify_one();
        let poker = wake.clone();
        let trickle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                poker.notify_one();
            }
        });
        let started = Instant::now();
        settle().next_burst(&wake).await;
        trickle.abort();
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(250) && waited <= Duration::from_millis(270), "{waited:?}");
    }
}
