//! Files read only when they are regular files, and never past their size: a FIFO, a device or
//! a socket (which could block an `open` forever, or never end) is refused before a byte is read.

use std::fs::{File, FileType};
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Opens `path` for reading, without blocking (a FIFO without a writer would block `open`
/// forever), and checks on the open handle that it is a regular file. Returns the file and its
/// length. `what` names what was expected in the error, e.g. "a weight file".
///
/// # Errors
/// [`Error::Io`] when it cannot be opened; [`Error::FileRejected`] when it is not a regular file.
pub(crate) fn open_regular(path: &Path, what: &str) -> Result<(File, u64)> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::FileRejected {
            path: path.to_path_buf(),
            problem: format!(
                "not a regular file ({}); {what} was expected",
                describe_file_type(&meta.file_type())
            ),
        });
    }
    Ok((file, meta.len()))
}

/// Checks that `path` is a regular file (see [`open_regular`]) before another reader opens it
/// by name.
pub(crate) fn check_regular(path: &Path, what: &str) -> Result<u64> {
    open_regular(path, what).map(|(_, len)| len)
}

/// Reads a regular file of at most `max_bytes`, and never more than the file's size when it
/// was opened (a file that grows while it is read is cut there).
///
/// # Errors
/// As [`open_regular`], and [`Error::FileRejected`] when the file is over `max_bytes`.
pub(crate) fn read_limited(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, what)?;
    if len > max_bytes {
        return Err(Error::FileRejected {
            path: path.to_path_buf(),
            problem: format!("{len} bytes, over the limit of {max_bytes} bytes for {what}"),
        });
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// Reads a whole regular file, up to its size when opened.
pub(crate) fn read_regular(path: &Path, what: &str) -> Result<Vec<u8>> {
    read_limited(path, u64::MAX, what)
}

fn describe_file_type(file_type: &FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_dir() {
        "a folder"
    } else {
        "not a plain file"
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    #[allow(unsafe_code)] // mkfifo(3): a FIFO to refuse.
    fn devices_and_fifos_are_refused_and_files_read_to_their_size() {
        let err = read_regular(Path::new("/dev/zero"), "a weight file").unwrap_err();
        assert!(
            err.to_string().contains("not a regular file (a device)"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("ferrovision-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, "a checkpoint").unwrap_err();
        assert!(err.to_string().contains("(a FIFO); a checkpoint"), "{err}");
        let file = dir.join("f");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(read_regular(&file, "x").unwrap(), b"abc");
        let err = read_limited(&file, 2, "an image file").unwrap_err();
        assert!(matches!(err, Error::FileRejected { .. }), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
