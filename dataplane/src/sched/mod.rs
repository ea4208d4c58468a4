//! Placeholder module (sched).
