//! Placeholder module (forward).
