//! `hsb serve`: live sandboxes of the hybrid-sandbox library over an HTTP/1.1 JSON API,
//! on a UNIX socket (callers known by their uid) or on TCP with bearer tokens. Each
//! sandbox belongs to the token or uid that created it; everyone else gets 404. The
//! paths, fields and errors are in the OpenAPI document at `GET /openapi.json`, and the
//! wire types in [`hsb_client::api`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use hsb_server::{bind, Config, Listen};
//! let config = Config::new("unix:/tmp/hsb.sock".parse::<Listen>()?, hybrid_sandbox::Sandbox::with_default_policy());
//! let server = bind(config).await?;
//! server.run(async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! # Ok(()) }
//! ```

mod auth;
mod error;
mod exec;
mod files;
mod input;
mod openapi;
mod registry;
mod routes;
mod serve;
mod snapfile;

pub use auth::{Owner, TokenError, Tokens, MIN_TOKEN_LEN};
pub use routes::AllowedMount;
pub use serve::{bind, Config, Listen, ServeError, Server, Tls};
pub use snapfile::{SnapshotKey, MIN_KEY_LEN};
