//! The static assets, embedded in the binary. Each is served under a name
//! that carries a hash of its content, so browsers may cache it for a year:
//! a new version of a file is a new URL.

use std::sync::LazyLock;

/// One embedded file.
pub struct Asset {
    /// The file's name without the hash, e.g. `htmx.min.js`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
    /// A 64-bit FNV-1a hash of the content, computed at compile time.
    pub hash: u64,
}

impl Asset {
    /// The path the asset is served at: `/static/<stem>.<hash>.<ext>`.
    pub fn path(&self) -> String {
        match self.name.split_once('.') {
            Some((stem, ext)) => format!("/static/{stem}.{:016x}.{ext}", self.hash),
            None => format!("/static/{}.{:016x}", self.name, self.hash),
        }
    }
}

/// FNV-1a: enough to tell versions of a file apart, and `const`.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($name:literal, $file:literal, $type:literal) => {{
        const BYTES: &[u8] = include_bytes!(concat!("../static/", $file));
        Asset { name: $name, content_type: $type, bytes: BYTES, hash: fnv1a(BYTES) }
    }};
}

/// htmx 2.0.11 from npm (`htmx.org`), with its licence header.
pub static HTMX: Asset = asset!("htmx.min.js", "htmx-2.0.11.min.js", "text/javascript; charset=utf-8");
/// The htmx SSE extension 2.2.4 from npm (`htmx-ext-sse`), with its licence header.
pub static HTMX_SSE: Asset = asset!("htmx-sse.min.js", "htmx-ext-sse-2.2.4.min.js", "text/javascript; charset=utf-8");
/// Ferry's own script: following a live log.
pub static APP_JS: Asset = asset!("ferry.js", "ferry.js", "text/javascript; charset=utf-8");
/// Ferry's stylesheet.
pub static CSS: Asset = asset!("ferry.css", "ferry.css", "text/css; charset=utf-8");

/// The site's icon, also served at `/favicon.ico` (browsers ask for it).
pub static FAVICON: Asset = asset!("favicon.svg", "favicon.svg", "image/svg+xml");

/// Every asset.
pub static ALL: [&Asset; 5] = [&HTMX, &HTMX_SSE, &APP_JS, &CSS, &FAVICON];

static PATHS: LazyLock<Vec<(String, &'static Asset)>> = LazyLock::new(|| ALL.iter().map(|a| (a.path(), *a)).collect());

/// The asset served at `path`, if any.
pub fn by_path(path: &str) -> Option<&'static Asset> {
    PATHS.iter().find(|(p, _)| p == path).map(|(_, a)| *a)
}

/// The paths pages link to, computed once.
pub struct Links {
    pub htmx: String,
    pub sse: String,
    pub app: String,
    pub css: String,
}

/// See [`Links`].
pub static LINKS: LazyLock<Links> =
    LazyLock::new(|| Links { htmx: HTMX.path(), sse: HTMX_SSE.path(), app: APP_JS.path(), css: CSS.path() });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assets_are_found_by_their_hashed_path_only() {
        for a in ALL {
            assert!(by_path(&a.path()).is_some_and(|b| b.name == a.name));
            assert!(!a.bytes.is_empty());
        }
        assert!(by_path("/static/htmx.min.js").is_none());
        assert_ne!(HTMX.hash, CSS.hash);
    }

    #[test]
    fn vendored_scripts_keep_their_licence_header() {
        for a in [&HTMX, &HTMX_SSE] {
            let head = std::str::from_utf8(&a.bytes[..200]).unwrap_or_default();
            assert!(head.starts_with("/*!") && head.contains("Zero-Clause BSD"), "{}", a.name);
        }
    }
}
