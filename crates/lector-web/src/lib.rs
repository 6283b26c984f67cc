//! Lector's web layer: server-rendered pages, the REST API and authentication.

use lector_store::Store;

/// Serves Lector on `listener` until Ctrl-C or SIGTERM.
pub async fn serve(store: Store, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let _ = (store, listener);
    Ok(())
}
