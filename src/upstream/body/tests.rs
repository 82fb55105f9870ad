//! The idle timeout between body chunks, under a paused clock.

use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::*;

/// A body fed by hand through a channel.
struct Fed(mpsc::Receiver<Bytes>);

impl Body for Fed {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.get_mut().0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test(start_paused = true)]
async fn chunks_closer_than_the_idle_timeout_pass() {
    let (tx, rx) = mpsc::channel(1);
    let mut body = IdleBody::new(Fed(rx), Duration::from_secs(10));
    tokio::spawn(async move {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(9)).await;
            tx.send(Bytes::from_static(b"x")).await.unwrap();
        }
    });
    let mut got = 0;
    while let Some(frame) = body.frame().await {
        frame.unwrap();
        got += 1;
    }
    assert_eq!(got, 5);
}

#[tokio::test(start_paused = true)]
async fn a_gap_longer_than_the_idle_timeout_fails_at_the_timeout() {
    let (tx, rx) = mpsc::channel(1);
    let mut body = IdleBody::new(Fed(rx), Duration::from_secs(10));
    tx.send(Bytes::from_static(b"x")).await.unwrap();
    body.frame().await.unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let err = body.frame().await.unwrap().unwrap_err();
    assert!(matches!(err, BodyError::Idle(_)), "{err}");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_does_not_count_as_idle() {
    let (tx, rx) = mpsc::channel(4);
    let mut body = IdleBody::new(Fed(rx), Duration::from_secs(10));
    tx.send(Bytes::from_static(b"a")).await.unwrap();
    body.frame().await.unwrap().unwrap();
    // The consumer takes a minute before asking again; the data is there by then.
    tokio::time::sleep(Duration::from_secs(60)).await;
    tx.send(Bytes::from_static(b"b")).await.unwrap();
    assert!(body.frame().await.unwrap().is_ok());
}
