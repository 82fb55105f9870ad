//! One timer kept for many waits on the same connection (the request-header timeout of a
//! client connection, the response deadline of an upstream one). Arming and disarming a
//! tokio timer for every request cost more than the rest of the wait; this one is made once
//! and moved only when it fires before the deadline at hand (deadlines of later waits lie
//! later) or must fire sooner (a shorter timeout than the last). Left armed while its
//! connection idles, it may wake the last task that polled it once, for nothing. Nor is it
//! polled again while it is armed for the same task: a poll registers the waker anew each
//! time, twice a proxied request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Waker};

use tokio::time::{Instant, Sleep};

#[derive(Debug, Default)]
pub struct KeptTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The waker the armed timer wakes; `None` once it fired or was moved unpolled.
    wakes: Option<Waker>,
}

impl KeptTimer {
    /// Whether `deadline` has passed; otherwise the waker is registered for it.
    pub fn passed(&mut self, cx: &mut Context<'_>, deadline: Instant) -> bool {
        let timer = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
            self.wakes = None;
        } else if !timer.is_elapsed() && self.wakes.as_ref().is_some_and(|armed| armed.will_wake(cx.waker())) {
            // Armed, for this task, by this deadline or sooner.
            return false;
        }
        while timer.as_mut().poll(cx).is_ready() {
            if Instant::now() >= deadline {
                self.wakes = None;
                return true;
            }
            timer.as_mut().reset(deadline);
        }
        match &mut self.wakes {
            Some(armed) => armed.clone_from(cx.waker()),
            None => self.wakes = Some(cx.waker().clone()),
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

    /// Wakes counted, for a task that is not tokio's.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_armed_timer_polled_by_another_task_wakes_that_one() {
        let mut timer = KeptTimer::default();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (first, second) = (std::sync::Arc::new(Count(0.into())), std::sync::Arc::new(Count(0.into())));
        let (first_waker, second_waker) = (Waker::from(first.clone()), Waker::from(second.clone()));
        assert!(!timer.passed(&mut Context::from_waker(&first_waker), deadline));
        assert!(!timer.passed(&mut Context::from_waker(&first_waker), deadline), "armed: not polled again");
        assert!(!timer.passed(&mut Context::from_waker(&second_waker), deadline));
        tokio::time::sleep_until(deadline + Duration::from_millis(1)).await;
        assert_eq!(second.0.load(std::sync::atomic::Ordering::Relaxed), 1, "the task that polled last is woken");
        assert!(timer.passed(&mut Context::from_waker(&second_waker), deadline));
    }

    #[tokio::test(start_paused = true)]
    async fn a_fired_timer_is_armed_again_for_a_later_deadline() {
        let mut timer = KeptTimer::default();
        let count = std::sync::Arc::new(Count(0.into()));
        let waker = Waker::from(count.clone());
        let start = Instant::now();
        assert!(!timer.passed(&mut Context::from_waker(&waker), start + Duration::from_secs(1)));
        tokio::time::sleep_until(start + Duration::from_secs(2)).await;
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 1);
        assert!(!timer.passed(&mut Context::from_waker(&waker), start + Duration::from_secs(3)));
        tokio::time::sleep_until(start + Duration::from_secs(4)).await;
        assert_eq!(count.0.load(std::sync::atomic::Ordering::Relaxed), 2, "armed again after it fired");
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
