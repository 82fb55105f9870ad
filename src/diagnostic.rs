//! Diagnostics: what a source or `compile` has to say about an object or a file that it
//! rejected in whole or in part. They are data: shown by `lintel check`, `/routes` and logs.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something was dropped or refused: the table is not what the object asked for.
    Error,
    /// Served, but not quite as written (an ignored annotation, a literal `*` in a path).
    Warning,
}

/// What a diagnostic is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Subject {
    /// A Kubernetes object.
    Object { kind: String, namespace: String, name: String },
    /// A file of the manifests directory, with the line where the problem starts.
    File { path: String, line: Option<usize> },
}

impl Subject {
    pub fn object(kind: &str, namespace: &str, name: &str) -> Self {
        Self::Object { kind: kind.to_owned(), namespace: namespace.to_owned(), name: name.to_owned() }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Object { kind, namespace, name } if namespace.is_empty() => write!(f, "{kind} {name}"),
            Self::Object { kind, namespace, name } => write!(f, "{kind} {namespace}/{name}"),
            Self::File { path, line: Some(line) } => write!(f, "{path}:{line}"),
            Self::File { path, line: None } => f.write_str(path),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub subject: Subject,
    /// The field in the object (`spec.rules[0].http.paths[1].path`), empty when it is the whole.
    pub field: String,
    pub message: String,
}

impl Diagnostic {
    pub fn error(subject: Subject, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Error, subject, field: field.into(), message: message.into() }
    }

    pub fn warning(subject: Subject, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, subject, field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{level}: {}", self.subject)?;
        if !self.field.is_empty() {
            write!(f, " {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}
