//! The dashboard's files, embedded in the binary at build time from `gateway/dashboard/`: no
//! front-end build step, nothing to install beside the gateway. Each has its content type and
//! an entity tag from its content, for revalidation.

use std::sync::OnceLock;

/// One embedded file.
#[derive(Debug)]
pub struct File {
    /// Its path under `/dashboard/static/`.
    pub path: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub bytes: &'static [u8],
}

macro_rules! embed {
    ($($path:literal => $content_type:expr),* $(,)?) => {
        &[$(File {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../../dashboard/static/", $path)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files served under `/dashboard/static/`.
static FILES: &[File] = embed! {
    "app.css" => CSS,
    "common.js" => JS,
    "charts.js" => JS,
    "estate.js" => JS,
    "asset.js" => JS,
    "forecast.js" => JS,
    "waste.js" => JS,
    "vendor/uplot/uPlot.iife.min.js" => JS,
    "vendor/uplot/uPlot.min.css" => CSS,
    "vendor/uplot/LICENSE" => "text/plain; charset=utf-8",
};

/// The file at `path`, if embedded.
pub fn get(path: &str) -> Option<&'static File> {
    FILES.iter().find(|file| file.path == path)
}

/// `file`'s entity tag: a prefix of its SHA-256, computed once per file.
pub fn etag(file: &'static File) -> String {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        FILES
            .iter()
            .map(|file| {
                let digest = ring::digest::digest(&ring::digest::SHA256, file.bytes);
                let hex: String = digest.as_ref()[..12]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    FILES
        .iter()
        .position(|known| std::ptr::eq(known, file))
        .and_then(|i| tags.get(i).cloned())
        .unwrap_or_default()
}

/// The HTML page `name` (from `gateway/dashboard/`).
pub fn page(name: &str) -> String {
    let bytes: &[u8] = match name {
        "estate.html" => include_bytes!("../../../dashboard/estate.html"),
        "asset.html" => include_bytes!("../../../dashboard/asset.html"),
        "waste.html" => include_bytes!("../../../dashboard/waste.html"),
        _ => include_bytes!("../../../dashboard/sign-in.html"),
    };
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_found_with_its_type_and_a_stable_tag() {
        for file in FILES {
            let found = get(file.path);
            assert!(found.is_some_and(|f| !f.bytes.is_empty()), "{}", file.path);
            let tag = etag(file);
            assert_eq!(tag.len(), 26, "{tag}");
            assert_eq!(tag, etag(file));
        }
        assert!(get("../Cargo.toml").is_none());
        assert_eq!(get("app.css").map(|f| f.content_type), Some(CSS));
        assert_eq!(get("common.js").map(|f| f.content_type), Some(JS));
    }
}
