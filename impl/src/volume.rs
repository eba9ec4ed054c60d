//! Volumes. TODO(lead) — being written.
