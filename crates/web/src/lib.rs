//! Ferry's web interface as data and markup: the askama templates, the view
//! models they render, the UI strings in English and Simplified Chinese, and
//! the static assets (htmx, its SSE extension, Ferry's script and stylesheet)
//! embedded in the binary.
//!
//! Architecture invariants:
//! - No I/O and no knowledge of the store or the server: a view model is
//!   plain data the server fills; rendering is a pure function of it. This
//!   keeps HTML edits from recompiling the database layer, and the reverse.
//! - Every UI string comes from [`i18n`]; a template never holds prose of its
//!   own, so both languages always have every string.
//! - Nothing here decides what a user may do. A view model may say a button
//!   is worth showing; the server's access check decides whether the action
//!   it posts is allowed.

pub mod assets;
pub mod i18n;
pub mod requests;
pub mod views;

pub use askama::Template;
pub use i18n::{Lang, Text};

/// Rendering a template failed (a formatting error; templates are checked at
/// compile time).
#[derive(Debug)]
pub struct RenderError(pub String);

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rendering a page: {}", self.0)
    }
}

impl std::error::Error for RenderError {}

/// Renders any of this crate's templates.
pub fn render<T: Template>(t: &T) -> Result<String, RenderError> {
    t.render().map_err(|e| RenderError(e.to_string()))
}
