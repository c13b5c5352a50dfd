//! The events that end a replica: SIGINT/SIGTERM, and stdin reaching EOF.

use std::future::Future;
use std::io::{self, Read};

use tokio::sync::oneshot;

/// Resolves when stdin reaches EOF or fails; whatever is read is discarded.
///
/// The read runs on a plain, detached thread rather than `tokio::io::stdin`: a blocking read
/// cannot be cancelled, and tokio's runtime would wait for it on shutdown, so a SIGTERM would
/// hang until the parent closed the pipe. A detached thread simply ends with the process.
pub(crate) async fn stdin_eof() {
    let (eof_tx, eof_rx) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("stdin-eof".into())
        .spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = [0u8; 512];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        tracing::debug!(error = %err, "reading stdin failed; treating it as EOF");
                        break;
                    }
                }
            }
            let _ = eof_tx.send(());
        });
    match spawned {
        // A dropped sender cannot happen without the thread having ended: EOF either way.
        Ok(_) => {
            let _ = eof_rx.await;
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot watch stdin; only signals will stop this replica");
            std::future::pending::<()>().await;
        }
    }
}

/// Registers for SIGINT and SIGTERM now, so a failure shows at start rather than when a signal
/// is sent, and returns a future that resolves on the first of them.
pub(crate) fn signals() -> io::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
                _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %err, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        })
    }
}
