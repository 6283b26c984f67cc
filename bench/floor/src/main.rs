//! The HTTP floor: the cheapest axum + tokio server, answering every GET with a small constant
//! JSON body. `lector-bench-floor 127.0.0.1:PORT` binds that address, prints one ready line
//! (`floor listening on http://ADDR`) and serves until killed.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::io::Write;

const BODY: &str = r#"{"ok":true}"#;

async fn constant() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

#[tokio::main]
async fn main() {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_string());
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("floor: cannot listen on {addr}: {e}");
            std::process::exit(1);
        }
    };
    let app = Router::new().fallback(get(constant));
    let local = listener.local_addr().expect("bound address");
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "floor listening on http://{local}");
        let _ = out.flush();
    }
    if let Err(e) = axum::serve(listener, app).await {
        eprintln!("floor: server stopped: {e}");
        std::process::exit(1);
    }
}
