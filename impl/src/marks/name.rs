//! Mark names (`specs/marks.md` MARK-1): short, printable, unambiguous on a command line.
//!
//! A name is one or more *components* joined by `/`. A component is 1..=64 bytes of
//! `[A-Za-z0-9._-]`, does not start with `.` or `-`. A whole name is at most
//! [`MARK_NAME_SIZE_MAX_BYTES`]. A [`super::VolumeSpace`] holds only one-component names; the
//! `/` exists so a [`super::CompositeSpace`] can route `origin/main` to the space it mounts at
//! `origin/`.

use super::MarkError;

/// Longest mark name, in bytes (MARK-1).
pub const MARK_NAME_SIZE_MAX_BYTES: usize = 255;
/// Longest component of a mark name, in bytes (MARK-1).
pub const MARK_COMPONENT_SIZE_MAX_BYTES: usize = 64;

/// A valid mark name (MARK-1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MarkName(String);

impl MarkName {
    /// Checks `name` against MARK-1.
    pub fn new(name: &str) -> Result<Self, MarkError> {
        let bad = |reason: &'static str| MarkError::InvalidName { name: name.to_owned(), reason };
        if name.is_empty() {
            return Err(bad("empty"));
        }
        if name.len() > MARK_NAME_SIZE_MAX_BYTES {
            return Err(bad("longer than 255 bytes"));
        }
        for c in name.split('/') {
            check_component(c).map_err(bad)?;
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Is it a single component (no `/`), as a [`super::VolumeSpace`] requires?
    pub fn is_simple(&self) -> bool {
        !self.0.contains('/')
    }

    /// `prefix ‖ self` (a mount prefix is empty or ends with `/`).
    pub(crate) fn prefixed(&self, prefix: &str) -> Result<Self, MarkError> {
        Self::new(&format!("{prefix}{}", self.0))
    }

    /// Decodes a map key (MARK-2): a one-component name.
    pub(crate) fn from_key(key: &[u8]) -> Result<Self, MarkError> {
        let s = std::str::from_utf8(key)
            .map_err(|_| MarkError::Corrupt { detail: "a mark name is not UTF-8".into() })?;
        let n = Self::new(s).map_err(|e| MarkError::Corrupt { detail: e.to_string() })?;
        if !n.is_simple() {
            return Err(MarkError::Corrupt { detail: format!("stored mark name {s:?} has a '/'") });
        }
        Ok(n)
    }
}

fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() {
        return Err("has an empty component");
    }
    if c.len() > MARK_COMPONENT_SIZE_MAX_BYTES {
        return Err("has a component longer than 64 bytes");
    }
    if c.starts_with('.') || c.starts_with('-') {
        return Err("has a component starting with '.' or '-'");
    }
    if !c.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err("may only hold letters, digits, '.', '_', '-' and '/'");
    }
    Ok(())
}

impl std::fmt::Display for MarkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for MarkName {
    type Err = MarkError;
    fn from_str(s: &str) -> Result<Self, MarkError> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_mark1() {
        for ok in ["main", "v1.2", "a_b-c", "origin/main", "x/y/z", "A9"] {
            MarkName::new(ok).unwrap();
        }
        for bad in ["", "a b", "a:b", ".hidden", "-x", "a//b", "a/", "/a", "é", "a\0"] {
            assert!(matches!(MarkName::new(bad), Err(MarkError::InvalidName { .. })), "{bad:?}");
        }
        assert!(MarkName::new(&"a".repeat(65)).is_err());
        let long = ["a".repeat(64), "b".repeat(64), "c".repeat(64), "d".repeat(60)].join("/");
        assert_eq!(long.len(), 255);
        MarkName::new(&long).unwrap();
        assert!(MarkName::new(&format!("{long}e")).is_err());
        assert!(MarkName::new("main").unwrap().is_simple());
        assert!(!MarkName::new("o/main").unwrap().is_simple());
    }
}
