//! Composite spaces (`specs/marks.md` MARK-7): spaces mounted under name prefixes, so
//! `origin/main` names the mark `main` of the space mounted at `origin/`.
//!
//! Routing: the longest mounted prefix the name starts with (the empty prefix matches every
//! name) takes the rest of the name. Listing prepends each mount's prefix. A rename or fork
//! stays inside one mounted space (`CrossSpace` otherwise: moving a mark between spaces is a
//! sync, [`super::sync_mark`]).
//!
//! Never: route one name to two spaces; mount two spaces at one prefix.

use super::MarkError;
use super::name::MarkName;
use super::record::MarkInfo;
use super::space::Space;
use crate::storage::volume::Volume;
use std::sync::Arc;

/// Spaces mounted under prefixes (MARK-7).
#[derive(Clone, Default)]
pub struct CompositeSpace {
    /// (prefix, space), longest prefix first. A prefix is empty or ends with `/`.
    mounts: Vec<(String, Arc<dyn Space>)>,
}

impl std::fmt::Debug for CompositeSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefixes: Vec<&str> = self.mounts.iter().map(|(p, _)| p.as_str()).collect();
        f.debug_struct("CompositeSpace").field("mounts", &prefixes).finish()
    }
}

impl CompositeSpace {
    /// No mounts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mounts `space` at `prefix`: empty, or a valid mark name followed by `/`.
    pub fn mount(mut self, prefix: &str, space: Arc<dyn Space>) -> Result<Self, MarkError> {
        if !prefix.is_empty() {
            let bad = |reason| MarkError::InvalidName { name: prefix.to_owned(), reason };
            let stem =
                prefix.strip_suffix('/').ok_or_else(|| bad("a mount prefix ends with '/'"))?;
            MarkName::new(stem)?;
        }
        if self.mounts.iter().any(|(p, _)| p == prefix) {
            return Err(MarkError::AlreadyExists { name: prefix.to_owned() });
        }
        self.mounts.push((prefix.to_owned(), space));
        self.mounts.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(self)
    }

    /// The mount and the name inside it.
    fn route(&self, name: &MarkName) -> Result<(usize, MarkName), MarkError> {
        for (i, (prefix, _)) in self.mounts.iter().enumerate() {
            if let Some(rest) = name.as_str().strip_prefix(prefix.as_str())
                && !rest.is_empty()
            {
                return Ok((i, MarkName::new(rest)?));
            }
        }
        Err(MarkError::NoMount { name: name.to_string() })
    }

    fn same_mount(
        &self,
        operation: &'static str,
        from: &MarkName,
        to: &MarkName,
    ) -> Result<(&dyn Space, MarkName, MarkName), MarkError> {
        let ((i, a), (j, b)) = (self.route(from)?, self.route(to)?);
        if i != j {
            return Err(MarkError::CrossSpace {
                operation,
                from: from.to_string(),
                to: to.to_string(),
            });
        }
        Ok((self.mounts[i].1.as_ref(), a, b))
    }

    fn at(&self, name: &MarkName) -> Result<(&dyn Space, MarkName), MarkError> {
        let (i, rest) = self.route(name)?;
        Ok((self.mounts[i].1.as_ref(), rest))
    }
}

impl Space for CompositeSpace {
    fn create(
        &self,
        name: &MarkName,
        salt: [u8; 32],
        created_ns: i64,
    ) -> Result<MarkInfo, MarkError> {
        let (s, n) = self.at(name)?;
        s.create(&n, salt, created_ns)
    }

    fn inspect(&self, name: &MarkName) -> Result<MarkInfo, MarkError> {
        let (s, n) = self.at(name)?;
        s.inspect(&n).map_err(|e| rename_not_found(e, name))
    }

    fn list(&self) -> Result<Vec<(MarkName, MarkInfo)>, MarkError> {
        let mut out = Vec::new();
        for (prefix, space) in &self.mounts {
            for (n, info) in space.list()? {
                let full = n.prefixed(prefix)?;
                // A name a longer prefix would route elsewhere is shadowed, not listed twice.
                if self.route(&full).map(|(i, _)| &self.mounts[i].0 == prefix).unwrap_or(false) {
                    out.push((full, info));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn delete(&self, name: &MarkName) -> Result<MarkInfo, MarkError> {
        let (s, n) = self.at(name)?;
        s.delete(&n).map_err(|e| rename_not_found(e, name))
    }

    fn rename(&self, from: &MarkName, to: &MarkName) -> Result<(), MarkError> {
        let (s, a, b) = self.same_mount("rename", from, to)?;
        s.rename(&a, &b)
    }

    fn fork(&self, from: &MarkName, to: &MarkName, created_ns: i64) -> Result<MarkInfo, MarkError> {
        let (s, a, b) = self.same_mount("fork", from, to)?;
        s.fork(&a, &b, created_ns)
    }

    fn open(&self, name: &MarkName, create: Option<&MarkInfo>) -> Result<Volume, MarkError> {
        let (s, n) = self.at(name)?;
        s.open(&n, create).map_err(|e| rename_not_found(e, name))
    }
}

/// Reports a missing mark by its full name.
fn rename_not_found(e: MarkError, full: &MarkName) -> MarkError {
    match e {
        MarkError::NotFound { .. } => MarkError::NotFound { name: full.to_string() },
        other => other,
    }
}
