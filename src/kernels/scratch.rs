//! Working buffers kept per thread between kernel calls: a few MiB each, and fresh ones would
//! cost a page fault and a zero-fill every 4 KiB.

use std::cell::Cell;
use std::thread::LocalKey;

/// Runs `f` with this thread's buffers in `key` (default ones the first time), and keeps them
/// after.
pub(super) fn with<S: Default + 'static, R>(
    key: &'static LocalKey<Cell<Option<S>>>,
    f: impl FnOnce(&mut S) -> R,
) -> R {
    let mut scratch = key.with(Cell::take).unwrap_or_default();
    let result = f(&mut scratch);
    // Gone only while the thread itself is exiting; the buffers are then simply freed.
    let _ = key.try_with(|cell| cell.set(Some(scratch)));
    result
}
