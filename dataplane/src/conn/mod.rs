//! Placeholder module (conn).
