//! WebSocket and other `Upgrade` requests: once both sides have switched protocols, bytes
//! are copied both ways until either side closes or nothing moves for the idle timeout.

use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::endpoint::InFlight;

const BUFFER: usize = 16 * 1024;

/// Joins the client's and the upstream's upgraded connections in a task of its own; the
/// endpoint counts the tunnel as in flight until it ends.
pub fn spawn_tunnel(
    client: OnUpgrade,
    upstream: OnUpgrade,
    idle: Duration,
    in_flight: InFlight,
    tracked: Option<crate::ops::lifecycle::TunnelGuard>,
) {
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let _tracked = tracked;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(err) => {
                tracing::debug!(%err, "upgrade did not complete");
                return;
            }
        };
        match tunnel(TokioIo::new(client), TokioIo::new(upstream), idle).await {
            Ok(()) => tracing::debug!("upgraded connection closed"),
            Err(err) => tracing::debug!(%err, "upgraded connection ended"),
        }
    });
}

#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("no data either way for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Copies `a` ⇄ `b`. A side that ends its stream gets its peer's write half shut; the tunnel
/// ends when both have, or on the first error, or after `idle` without a byte either way.
pub async fn tunnel<A, B>(mut a: A, mut b: B, idle: Duration) -> Result<(), TunnelError>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let mut a_buf = vec![0u8; BUFFER];
    let mut b_buf = vec![0u8; BUFFER];
    let (mut a_open, mut b_open) = (true, true);
    while a_open || b_open {
        let read = tokio::time::timeout(idle, async {
            tokio::select! {
                n = a.read(&mut a_buf), if a_open => (true, n),
                n = b.read(&mut b_buf), if b_open => (false, n),
            }
        })
        .await;
        let (from_a, n) = read.map_err(|_| TunnelError::Idle(idle))?;
        let n = n?;
        if from_a {
            a_open = pass(&a_buf[..n], &mut b, idle).await?;
        } else {
            b_open = pass(&b_buf[..n], &mut a, idle).await?;
        }
    }
    Ok(())
}

/// Writes what one side read to the other; an empty read is its end of stream, passed on as
/// a shut write half. Returns whether the reading side is still open.
async fn pass<W: AsyncWrite + Unpin>(data: &[u8], to: &mut W, idle: Duration) -> Result<bool, TunnelError> {
    if data.is_empty() {
        // The peer may already be gone; its own read side reports that.
        let _ = to.shutdown().await;
        return Ok(false);
    }
    tokio::time::timeout(idle, to.write_all(data)).await.map_err(|_| TunnelError::Idle(idle))??;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn copies_both_ways_and_half_closes() {
        let (client, mut client_peer) = tokio::io::duplex(64);
        let (upstream, mut upstream_peer) = tokio::io::duplex(64);
        let task = tokio::spawn(tunnel(client, upstream, Duration::from_secs(5)));
        client_peer.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        upstream_peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        upstream_peer.write_all(b"pong").await.unwrap();
        client_peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        client_peer.shutdown().await.unwrap();
        assert_eq!(upstream_peer.read(&mut buf).await.unwrap(), 0, "the upstream sees the client's end");
        upstream_peer.shutdown().await.unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn ends_after_the_idle_timeout() {
        let (client, _client_peer) = tokio::io::duplex(64);
        let (upstream, _upstream_peer) = tokio::io::duplex(64);
        let started = tokio::time::Instant::now();
        let result = tunnel(client, upstream, Duration::from_secs(30)).await;
        assert!(matches!(result, Err(TunnelError::Idle(_))), "{result:?}");
        assert_eq!(started.elapsed(), Duration::from_secs(30));
    }
}
