//! Paths as text for people and JSON: any path the operating system allows, including names
//! that are not UTF-8, which are written with their odd bytes escaped (`\xNN`) instead of
//! failing or being silently replaced.

use std::path::Path;

/// `path` as text: its UTF-8 runs as they are, each byte that is not valid UTF-8 as `\xNN`
/// (Python's `backslashreplace`), so two different names never print alike.
///
/// ```
/// use std::path::Path;
/// assert_eq!(ferrovision::escaped_path(Path::new("runs/train")), "runs/train");
/// # #[cfg(unix)] {
/// use std::os::unix::ffi::OsStrExt;
/// let odd = Path::new(std::ffi::OsStr::from_bytes(b"runs/caf\xe9"));
/// assert_eq!(ferrovision::escaped_path(odd), "runs/caf\\xe9");
/// # }
/// ```
pub fn escaped_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// Serialises a path as [`escaped_path`] text (serde's own refuses a non-UTF-8 path).
pub(crate) fn serialize_lossy<S: serde::Serializer>(
    path: &Path,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&escaped_path(path))
}
