//! The Python globals a `.pth` file's pickles name, checked against what PyTorch's
//! weights-only loader (`torch.load(weights_only=True)`, its default since 2.6) allows: tensor
//! and parameter rebuilds, storages, dtypes, layouts, `OrderedDict`. Any other global (such as
//! `posix.system`) could run code when the file is loaded in Python, so the file is refused
//! unless the caller trusts it.
//!
//! The pickles are walked opcode by opcode, without building any object: `GLOBAL` and `INST`
//! carry their names, `STACK_GLOBAL` takes the two strings pushed just before it (directly or
//! from the memo), and a name that is computed any other way, or an extension-registry code, is
//! refused as unknown.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// Globals of `torch` itself allowed by name: storages, tensor types, dtypes, layouts, memory
/// formats and quantisation schemes, which torch pickles as `torch.<name>`.
const TORCH_NAMES: &[&str] = &[
    "Size",
    "Tensor",
    "device",
    "dtype",
    "layout",
    "memory_format",
    "qscheme",
    "FloatStorage",
    "DoubleStorage",
    "HalfStorage",
    "BFloat16Storage",
    "LongStorage",
    "IntStorage",
    "ShortStorage",
    "CharStorage",
    "ByteStorage",
    "BoolStorage",
    "ComplexFloatStorage",
    "ComplexDoubleStorage",
    "QInt8Storage",
    "QUInt8Storage",
    "QInt32Storage",
    "QUInt4x2Storage",
    "QUInt2x4Storage",
    "UntypedStorage",
    "TypedStorage",
    "FloatTensor",
    "DoubleTensor",
    "HalfTensor",
    "BFloat16Tensor",
    "LongTensor",
    "IntTensor",
    "ShortTensor",
    "CharTensor",
    "ByteTensor",
    "BoolTensor",
    "float32",
    "float",
    "float64",
    "double",
    "float16",
    "half",
    "bfloat16",
    "int64",
    "long",
    "int32",
    "int",
    "int16",
    "short",
    "int8",
    "uint8",
    "bool",
    "complex64",
    "cfloat",
    "complex128",
    "cdouble",
    "complex32",
    "chalf",
    "uint16",
    "uint32",
    "uint64",
    "float8_e4m3fn",
    "float8_e5m2",
    "float8_e4m3fnuz",
    "float8_e5m2fnuz",
    "qint8",
    "quint8",
    "qint32",
    "quint4x2",
    "quint2x4",
    "strided",
    "sparse_coo",
    "sparse_csr",
    "sparse_csc",
    "sparse_bsr",
    "sparse_bsc",
    "_mkldnn",
    "contiguous_format",
    "channels_last",
    "channels_last_3d",
    "preserve_format",
    "per_tensor_affine",
    "per_channel_affine",
    "per_tensor_symmetric",
    "per_channel_symmetric",
    "per_channel_affine_float_qparams",
];

/// Globals outside `torch` allowed as `(module, name)`.
const OTHER_GLOBALS: &[(&str, &str)] = &[
    ("collections", "OrderedDict"),
    ("collections", "Counter"),
    ("torch._utils", "_rebuild_tensor"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_meta_tensor_no_storage"),
    ("torch._utils", "_rebuild_nested_tensor"),
    ("torch._utils", "_rebuild_wrapper_subclass"),
    ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.storage", "UntypedStorage"),
    ("torch.storage", "TypedStorage"),
    ("torch.serialization", "_get_layout"),
    ("torch.nn.modules.container", "ParameterDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("_codecs", "encode"),
];

/// Whether torch's weights-only loader allows `module.name`.
pub(super) fn allowed(module: &str, name: &str) -> bool {
    (module == "torch" && TORCH_NAMES.contains(&name)) || OTHER_GLOBALS.contains(&(module, name))
}

/// Refuses the `.pth` file at `path` when one of its pickles names a global torch's
/// weights-only loader does not allow. A container this cannot open is left to the reader,
/// which reports it.
///
/// # Errors
/// [`Error::UnsafePickle`] naming the first such global.
pub(super) fn check_file(path: &Path, file_len: u64) -> Result<()> {
    for pickle in pickles(path, file_len) {
        if let Some(global) = first_disallowed(&pickle) {
            return Err(Error::UnsafePickle {
                path: path.to_path_buf(),
                global,
            });
        }
    }
    Ok(())
}

/// The pickle streams of a `torch.save` file: every `.pkl` entry of a zip archive; the start
/// of a legacy file (its pickles run back to back, then raw storage bytes); the `pickle`
/// member of the oldest tar format.
fn pickles(path: &Path, file_len: u64) -> Vec<Vec<u8>> {
    let Ok(bytes) = crate::files::read_limited(path, file_len, "a weight file") else {
        return Vec::new();
    };
    if bytes.starts_with(b"PK\x03\x04") {
        return zip_pickles(&bytes);
    }
    if bytes.get(257..262) == Some(b"ustar") {
        return tar_member(&bytes, "pickle").into_iter().collect();
    }
    vec![bytes]
}

fn zip_pickles(bytes: &[u8]) -> Vec<Vec<u8>> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let Ok(mut archive) = zip::ZipArchive::with_config(config, std::io::Cursor::new(bytes)) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for i in 0..archive.len() {
        let Ok(entry) = archive.by_index(i) else {
            continue;
        };
        if !entry.name().is_ok_and(|name| name.ends_with(".pkl")) {
            continue;
        }
        let mut pickle = Vec::new();
        // Bounded by the archive: a stored entry is no larger than the file it is in.
        if entry
            .take(bytes.len() as u64)
            .read_to_end(&mut pickle)
            .is_ok()
        {
            found.push(pickle);
        }
    }
    found
}

/// The bytes of the tar member `name` (512-byte headers, octal sizes).
fn tar_member(bytes: &[u8], name: &str) -> Option<Vec<u8>> {
    let mut at = 0usize;
    while at + 512 <= bytes.len() {
        let header = &bytes[at..at + 512];
        let member = header[..100].split(|&b| b == 0).next()?;
        if member.is_empty() {
            return None;
        }
        let size_text = std::str::from_utf8(&header[124..136]).ok()?;
        let size = usize::from_str_radix(size_text.trim_matches(['\0', ' ']), 8).ok()?;
        let data = at + 512;
        let end = data.checked_add(size)?.min(bytes.len());
        if member == name.as_bytes() {
            return Some(bytes[data..end].to_vec());
        }
        at = data + size.div_ceil(512) * 512;
    }
    None
}

/// The first global the pickles starting `bytes` name that is not allowed, as `module.name`.
/// Pickles back to back (a legacy file) are walked in turn until bytes that are not a pickle.
pub(super) fn first_disallowed(bytes: &[u8]) -> Option<String> {
    let mut at = 0;
    // A legacy file: magic number, protocol, system info, the object, the storage keys.
    for _ in 0..5 {
        let mut walk = Walk::new(&bytes[at..]);
        match walk.run() {
            Ok(()) => at += walk.at,
            Err(Stop::Global(global)) => return Some(global),
            Err(Stop::Malformed) => return None,
        }
        if at >= bytes.len() || bytes[at] != 0x80 {
            return None;
        }
    }
    None
}

enum Stop {
    /// A global that is not allowed.
    Global(String),
    /// Not a pickle (or the raw bytes after a legacy file's pickles): left to the reader.
    Malformed,
}

/// One pickle's opcodes, with the strings the memo and the last two pushes hold.
struct Walk<'a> {
    bytes: &'a [u8],
    at: usize,
    memo: HashMap<u64, Option<String>>,
    /// The last two values pushed, as text when they were strings.
    recent: [Option<String>; 2],
}

impl<'a> Walk<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            memo: HashMap::new(),
            recent: [None, None],
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let end = self.at.checked_add(n).ok_or(Stop::Malformed)?;
        let taken = self.bytes.get(self.at..end).ok_or(Stop::Malformed)?;
        self.at = end;
        Ok(taken)
    }

    fn uint(&mut self, n: usize) -> Result<u64, Stop> {
        let mut value = [0u8; 8];
        value[..n].copy_from_slice(self.take(n)?);
        Ok(u64::from_le_bytes(value))
    }

    /// Bytes of a length-prefixed argument (`n`-byte little-endian length).
    fn counted(&mut self, n: usize) -> Result<&'a [u8], Stop> {
        let len = usize::try_from(self.uint(n)?).map_err(|_| Stop::Malformed)?;
        self.take(len)
    }

    fn line(&mut self) -> Result<&'a [u8], Stop> {
        let rest = self.bytes.get(self.at..).ok_or(Stop::Malformed)?;
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(Stop::Malformed)?;
        self.at += end + 1;
        Ok(&rest[..end])
    }

    fn push(&mut self, value: Option<String>) {
        self.recent = [self.recent[1].take(), value];
    }

    fn check(&self, module: &[u8], name: &[u8]) -> Result<(), Stop> {
        let (module, name) = (
            String::from_utf8_lossy(module),
            String::from_utf8_lossy(name),
        );
        if allowed(&module, &name) {
            Ok(())
        } else {
            Err(Stop::Global(format!("{module}.{name}")))
        }
    }

    /// Walks to the `STOP` opcode.
    fn run(&mut self) -> Result<(), Stop> {
        loop {
            let op = self.take(1)?[0];
            match op {
                b'.' => return Ok(()),
                // Strings, which STACK_GLOBAL may take.
                0x8c | b'U' | b'C' => {
                    let text = self.counted(1)?;
                    self.push(Some(String::from_utf8_lossy(text).into_owned()));
                }
                b'X' | b'T' | b'B' => {
                    let text = self.counted(4)?;
                    self.push(Some(String::from_utf8_lossy(text).into_owned()));
                }
                0x8d | 0x8e | 0x96 => {
                    let text = self.counted(8)?;
                    self.push(Some(String::from_utf8_lossy(text).into_owned()));
                }
                b'V' | b'S' => {
                    let text = self.line()?;
                    self.push(Some(String::from_utf8_lossy(text).into_owned()));
                }
                // The memo.
                b'h' => self.get(1)?,
                b'j' => self.get(4)?,
                b'g' => {
                    let key = parse_line_key(self.line()?)?;
                    self.push(self.memo.get(&key).cloned().flatten());
                }
                b'q' => self.put(1)?,
                b'r' => self.put(4)?,
                b'p' => {
                    let key = parse_line_key(self.line()?)?;
                    self.memo.insert(key, self.recent[1].clone());
                }
                0x94 => {
                    let key = self.memo.len() as u64;
                    self.memo.insert(key, self.recent[1].clone());
                }
                // Globals.
                b'c' | b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.check(module, name)?;
                    self.push(None);
                }
                0x93 => {
                    let [module, name] = [self.recent[0].take(), self.recent[1].take()];
                    let (Some(module), Some(name)) = (module, name) else {
                        return Err(Stop::Global("<a name computed in the pickle>".into()));
                    };
                    self.check(module.as_bytes(), name.as_bytes())?;
                    self.push(None);
                }
                0x82..=0x84 => {
                    let code = self.uint(match op {
                        0x82 => 1,
                        0x83 => 2,
                        _ => 4,
                    })?;
                    return Err(Stop::Global(format!("<extension registry code {code}>")));
                }
                // Other arguments, skipped.
                b'K' | 0x80 => self.skip(1)?,
                b'M' => self.skip(2)?,
                b'J' => self.skip(4)?,
                b'G' | 0x95 => self.skip(8)?,
                0x8a => self.skip_counted(1)?,
                0x8b => self.skip_counted(4)?,
                b'I' | b'L' | b'F' | b'P' => {
                    self.line()?;
                    self.push(None);
                }
                // No argument.
                b'(' | b'0' | b'1' | b'2' | b'N' | b'Q' | b'R' | b'a' | b'b' | b'd' | b'}'
                | b'e' | b'l' | b']' | b'o' | b's' | b't' | b')' | b'u' | 0x81 | 0x85 | 0x86
                | 0x87 | 0x88 | 0x89 | 0x8f | 0x90 | 0x91 | 0x92 | 0x97 | 0x98 => self.push(None),
                _ => return Err(Stop::Malformed),
            }
        }
    }

    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        self.take(n)?;
        self.push(None);
        Ok(())
    }

    fn skip_counted(&mut self, n: usize) -> Result<(), Stop> {
        self.counted(n)?;
        self.push(None);
        Ok(())
    }

    fn get(&mut self, n: usize) -> Result<(), Stop> {
        let key = self.uint(n)?;
        self.push(self.memo.get(&key).cloned().flatten());
        Ok(())
    }

    fn put(&mut self, n: usize) -> Result<(), Stop> {
        let key = self.uint(n)?;
        self.memo.insert(key, self.recent[1].clone());
        Ok(())
    }
}

fn parse_line_key(line: &[u8]) -> Result<u64, Stop> {
    std::str::from_utf8(line)
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .ok_or(Stop::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pickle.dumps(collections.OrderedDict(), protocol=2)`.
    const ORDERED_DICT: &[u8] = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01.";

    #[test]
    fn torch_globals_pass_and_others_are_named() {
        assert_eq!(first_disallowed(ORDERED_DICT), None);
        // `pickle.dumps(os.system, protocol=2)` on Linux.
        assert_eq!(
            first_disallowed(b"\x80\x02cposix\nsystem\nq\x00."),
            Some("posix.system".into())
        );
        // Protocol 4: STACK_GLOBAL after two memoised strings (`pickle.dumps(os.system, 4)`).
        let stack = b"\x80\x04\x95\x15\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94\x93\x94.";
        assert_eq!(first_disallowed(stack), Some("posix.system".into()));
        // The same names fetched back from the memo.
        let memo = b"\x80\x04\x8c\x05posix\x94\x8c\x06system\x94h\x00h\x01\x93.";
        assert_eq!(first_disallowed(memo), Some("posix.system".into()));
        let allowed = b"\x80\x04\x8c\x0ctorch._utils\x94\x8c\x12_rebuild_tensor_v2\x94\x93.";
        assert_eq!(first_disallowed(allowed), None);
        // A name made by a call cannot be checked: refused.
        let computed = b"\x80\x04N\x8c\x06system\x93.";
        assert!(first_disallowed(computed).unwrap().contains("computed"));
        // A second pickle after the first (a legacy file) is walked too.
        let mut legacy = ORDERED_DICT.to_vec();
        legacy.extend_from_slice(b"\x80\x02cbuiltins\neval\n.");
        assert_eq!(first_disallowed(&legacy), Some("builtins.eval".into()));
        // Raw bytes after the pickles end the walk.
        let mut raw = ORDERED_DICT.to_vec();
        raw.extend_from_slice(&[0xff, 0x00, 0x12]);
        assert_eq!(first_disallowed(&raw), None);
    }
}
