//! Serving the router over HTTPS: an accept loop of our own, because
//! `axum::serve` only takes plain listeners.
//!
//! Each accepted connection does its TLS handshake in its own task (a slow
//! client never holds up the accept loop), then hyper serves HTTP/1.1 on it
//! with upgrades, so the agent channel's WebSocket works as over plain HTTP.
//! Shutdown is graceful as with `axum::serve`: stop accepting, let every
//! connection finish the request it is on, wait for all of them.
//!
//! The certificate is chosen per handshake (`ferry_tls::ServerCertificate`),
//! so a reload on SIGHUP reaches new connections and leaves the open ones,
//! the agents' WebSockets among them, as they are.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves `app` on `listener` over TLS until `stop` turns true.
pub(crate) async fn serve(
    listener: TcpListener,
    config: Arc<tokio_rustls::rustls::ServerConfig>,
    app: Router,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(config);
    // Every connection task holds a clone of `close_rx`; `close_tx.closed()`
    // resolves when the last one is gone.
    let (close_tx, close_rx) = watch::channel(());
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // As the plain listener does: small messages go out at once.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection(tcp, peer, acceptor.clone(), app.clone(), stop.clone(), close_rx.clone()));
    }
    drop(listener);
    drop(close_rx);
    close_tx.closed().await;
}

async fn connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    app: Router,
    mut stop: watch::Receiver<bool>,
    _close: watch::Receiver<()>,
) {
    let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
    let tls = tokio::select! {
        done = handshake => match done {
            Ok(Ok(tls)) => tls,
            // A client that does not trust the certificate, a port scanner,
            // plain HTTP sent to the TLS port: nothing the server can act on.
            Ok(Err(e)) => {
                tracing::debug!(%peer, "TLS handshake failed: {e}");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        },
        () = stopped(&mut stop) => return,
    };
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` gives the plain
        // listener: handlers read the peer's address from here.
        req.extensions_mut().insert(ConnectInfo(peer));
        tower::ServiceExt::oneshot(app.clone(), req)
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), service).with_upgrades();
    let mut conn = pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, "connection: {e}");
                }
                return;
            }
            () = stopped(&mut stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Reads the certificate and key files again, saying in the log which
/// certificate is served now, or why the new pair was refused.
pub(crate) fn reload(certificate: &ferry_tls::ServerCertificate) {
    match certificate.reload() {
        Ok(info) => tracing::info!(
            "SIGHUP: TLS certificate reloaded from {}, now serving {info}",
            certificate.cert_path().display()
        ),
        Err(e) => {
            tracing::error!("SIGHUP: the new TLS certificate was refused, still serving {}: {e}", certificate.info())
        }
    }
}

/// Resolves once the server is told to stop (at once if it already was).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}
