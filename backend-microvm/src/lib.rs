//! The micro-VM backend of hybrid-sandbox.

mod guest;
mod memory;
mod mm;
mod errno;
mod vfs;
