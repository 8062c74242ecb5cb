//! config.json mapping.
