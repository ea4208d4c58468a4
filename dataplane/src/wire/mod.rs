//! Placeholder module (wire).
