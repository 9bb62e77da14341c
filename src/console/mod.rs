//! The web console (SPEC §10).
