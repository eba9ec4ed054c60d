//! Shared benchmark harness.
