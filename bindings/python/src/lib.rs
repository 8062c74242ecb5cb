//! Python package of hybrid-sandbox (in progress).
