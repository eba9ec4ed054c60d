//! `ConfigError`: why a `cellar.toml` was refused, with the file, line and key it is about.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What kind of problem a [`ConfigError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML, or a value of the wrong type.
    Syntax,
    /// A key this version of cellar does not know (a typo, or a key of another kind).
    UnknownKey,
    /// A name defined twice.
    Duplicate,
    /// A reference to a store, cell or volume that is not defined.
    Dangling,
    /// A value out of range, a missing key, or a combination that is not allowed.
    Invalid,
    /// A backend could not be opened (missing device, server down, bad secret file...).
    Unreachable,
}

/// A refused configuration: `FILE:LINE: KEY: MESSAGE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// What kind of problem.
    pub kind: ConfigErrorKind,
    /// The configuration file.
    pub file: PathBuf,
    /// 1-based line the problem is on, when known.
    pub line: Option<usize>,
    /// Dotted key the problem is about (`stores.disk.path`), when known.
    pub key: String,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Where in which file: turns byte spans into line numbers for errors.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file's path, as given.
    pub file: PathBuf,
    /// Its text.
    pub text: String,
}

impl Source {
    /// A source named `file` holding `text`.
    pub fn new(file: &Path, text: String) -> Self {
        Self { file: file.to_path_buf(), text }
    }

    /// 1-based line of byte offset `at`.
    pub fn line_of(&self, at: usize) -> usize {
        let at = at.min(self.text.len());
        self.text.as_bytes().iter().take(at).filter(|b| **b == b'\n').count() + 1
    }

    /// An error about `key` at `span`.
    pub fn error(
        &self,
        kind: ConfigErrorKind,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            kind,
            file: self.file.clone(),
            line: span.map(|s| self.line_of(s.start)),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Classifies a TOML parse error and names the dotted key it is about: the table header
    /// above the error's line joined with the key the span covers (or the line's key).
    pub fn parse_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().to_owned();
        let kind = if message.starts_with("unknown field") {
            ConfigErrorKind::UnknownKey
        } else if message.contains("duplicate key") || message.contains("duplicate table") {
            ConfigErrorKind::Duplicate
        } else {
            ConfigErrorKind::Syntax
        };
        let key = e.span().map(|s| self.key_at(&s)).unwrap_or_default();
        self.error(kind, e.span(), key, message)
    }

    /// Best-effort dotted key at `span` (see [`Source::parse_error`]).
    fn key_at(&self, span: &Range<usize>) -> String {
        let start = span.start.min(self.text.len());
        let line_start = self.text.get(..start).and_then(|t| t.rfind('\n')).map_or(0, |i| i + 1);
        let line_end = self
            .text
            .get(start..)
            .and_then(|t| t.find('\n'))
            .map_or(self.text.len(), |i| start + i);
        let line = self.text.get(line_start..line_end).unwrap_or("").trim();
        if line.starts_with('[') {
            return line.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
        }
        let key = line.split('=').next().unwrap_or("").trim().trim_matches('"');
        let header = self
            .text
            .get(..line_start)
            .unwrap_or("")
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('['))
            .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
        match header {
            Some(h) if !key.is_empty() => format!("{h}.{key}"),
            Some(h) => h,
            None => key.to_owned(),
        }
    }
}
