//! One timer kept for many waits on the same connection (the request-header timeout of a
//! client connection, the response deadline of an upstream one). Arming and disarming a
//! tokio timer for every request cost more than the rest of the wait; this one is made once
//! and moved only when it fires before the deadline at hand (deadlines of later waits lie
//! later) or must fire sooner (a shorter timeout than the last). Left armed while its
//! connection idles, it may wake the last task that polled it once, for nothing.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;

use tokio::time::{Instant, Sleep};

#[derive(Debug, Default)]
pub struct KeptTimer(Option<Pin<Box<Sleep>>>);

impl KeptTimer {
    /// Whether `deadline` has passed; otherwise the waker is registered for it.
    pub fn passed(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let timer = self.0.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                return true;
            }
            timer.as_mut().reset(deadline);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::task::Poll;
    use std::time::Duration;

    use super::*;

    /// One poll: whether the deadline has passed now.
    async fn passed_now(timer: &mut KeptTimer, deadline: Instant) -> bool {
        std::future::poll_fn(|cx| Poll::Ready(timer.passed(cx, deadline))).await
    }

    /// Waits until the timer says the deadline has passed.
    async fn wait(timer: &mut KeptTimer, deadline: Instant) {
        std::future::poll_fn(|cx| if timer.passed(cx, deadline) { Poll::Ready(()) } else { Poll::Pending }).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_deadline_is_not_cut_by_the_earlier_one() {
        let mut timer = KeptTimer::default();
        let start = Instant::now();
        let (first, second) = (start + Duration::from_secs(10), start + Duration::from_secs(15));
        assert!(!passed_now(&mut timer, first).await);
        tokio::time::sleep_until(first).await;
        assert!(!passed_now(&mut timer, second).await, "the timer armed for the first fired; the second is not due");
        wait(&mut timer, second).await;
        assert!(Instant::now() >= second);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sooner_deadline_fires_sooner() {
        let mut timer = KeptTimer::default();
        let start = Instant::now();
        assert!(!passed_now(&mut timer, start + Duration::from_secs(60)).await);
        wait(&mut timer, start + Duration::from_secs(1)).await;
        assert!(Instant::now() < start + Duration::from_secs(2));
    }
}
