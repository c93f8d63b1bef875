use std::fmt;
use std::path::PathBuf;

/// A manifest that is not a valid Application. Names the file, the document
/// within it (multi-document YAML), the app when known, and the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    pub file: PathBuf,
    /// 0-based index of the YAML document inside `file`.
    pub doc: usize,
    pub app: Option<String>,
    /// Dotted path of the offending field, e.g. `spec.source.path`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.doc > 0 {
            write!(f, " (document {})", self.doc + 1)?;
        }
        if let Some(app) = &self.app {
            write!(f, ": application \"{app}\"")?;
        }
        if self.field.is_empty() {
            write!(f, ": {}", self.message)
        } else {
            write!(f, ": {}: {}", self.field, self.message)
        }
    }
}

impl std::error::Error for ModelError {}
