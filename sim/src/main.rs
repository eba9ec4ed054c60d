//! The `cellar` command. TODO(lead).
fn main() {}
