//! Serving the built dashboard (`dashboard/dist`, made by `npm run build` in `dashboard/`)
//! at `/` of the local stack: files from the directory, and `index.html` for any other
//! non-API path so that deep links (`/runs/<id>`) load the app. When no build is found, `/`
//! says how to make one instead.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use axum::routing::any;
use axum::Router;
use std::path::{Path, PathBuf};
use tower_http::services::{ServeDir, ServeFile};

/// The environment variable naming the built dashboard's directory.
pub const DIR_ENV: &str = "VAIA_DASHBOARD_DIR";

/// Where the built dashboard is: `VAIA_DASHBOARD_DIR`, else `dashboard/dist` beside the
/// current directory or above the running binary (a checkout's `target/<profile>/vaia`).
pub fn find_dir() -> Option<PathBuf> {
    if let Ok(d) = std::env::var(DIR_ENV) {
        return Some(PathBuf::from(d));
    }
    let mut candidates = vec![PathBuf::from("dashboard/dist")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join("dashboard/dist")));
    }
    candidates
        .into_iter()
        .find(|c| c.join("index.html").is_file())
}

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vaia</title></head>
<body><main>
<h1>vaia</h1>
<p>The dashboard is not built. Build it once (Node 20 and npm):</p>
<pre>cd dashboard &amp;&amp; npm ci &amp;&amp; npm run build</pre>
<p>then restart <code>vaia up</code> (or point <code>VAIA_DASHBOARD_DIR</code> at a build).
The API is live meanwhile: <a href="/api/runs">/api/runs</a>.</p>
</main></body></html>"#;

/// The fallback service for every path no other route matched: JSON 404 under `/api/`,
/// the dashboard elsewhere.
pub fn router(dir: Option<&Path>) -> Router {
    let api_404 = Router::new().route("/api/{*rest}", any(vaia_api::not_found));
    api_404.merge(app(dir))
}

fn app(dir: Option<&Path>) -> Router {
    match dir {
        Some(dir) if dir.join("index.html").is_file() => {
            let index = ServeFile::new(dir.join("index.html"));
            Router::new().fallback_service(ServeDir::new(dir).fallback(index))
        }
        other => {
            if let Some(d) = other {
                tracing::warn!(dir = %d.display(), "no index.html in the dashboard directory");
            }
            Router::new().fallback(|| async { (StatusCode::OK, Html(NOT_BUILT)).into_response() })
        }
    }
}
