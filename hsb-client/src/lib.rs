//! The HTTP API of `hsb serve`: its wire types ([`api`]), and a [`Client`] whose
//! sandboxes are [`hybrid_sandbox::Live`] sandboxes like the library's own, so code
//! (the CLI, the Python package) works the same in-process and against a server.

pub mod api;
mod client;
mod connect;
mod remote;
pub mod tls;

pub use client::{Client, ClientError};
pub use connect::{default_socket, Endpoint};
