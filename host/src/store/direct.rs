//! Writing a large blob file so that it is durable without passing through the page cache.
//!
//! A new source is handed to this host's worker in memory, so caching its file as well would
//! only hold the same bytes twice, and copying several MB into fresh page-cache pages was the
//! largest cost of a submission after the image work itself (measured: see BENCHMARKS.md).
//! With `O_DIRECT` the disk reads the bytes from an aligned buffer instead; file systems that
//! refuse `O_DIRECT` (tmpfs) get an ordinary write. Either way the file is synced.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// The alignment `O_DIRECT` needs for buffers, offsets and lengths (a page covers every
/// common logical block size).
const ALIGN: usize = 4096;

/// One aligned block of the staging buffer.
#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Block([u8; ALIGN]);

thread_local! {
    /// Reused by each blocking thread, so its pages are touched once, not per write.
    static STAGING: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Creates `path` (which must not exist) holding `bytes`, synced to disk.
pub(super) fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    match write_direct(path, bytes) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let mut file = File::create(path)?;
            file.write_all(bytes)?;
            file.sync_data()
        }
        done => done,
    }
}

fn write_direct(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)?;
    let blocks = bytes.len().div_ceil(ALIGN);
    STAGING.with_borrow_mut(|staging| {
        if staging.len() < blocks {
            staging.resize(blocks, Block([0; ALIGN]));
        }
        // SAFETY: `Block` is `repr(C)` with a single `[u8; ALIGN]` field and no padding, so
        // the first `blocks` blocks are `blocks * ALIGN` initialised, exclusively borrowed bytes.
        let buf =
            unsafe { std::slice::from_raw_parts_mut(staging.as_mut_ptr().cast::<u8>(), blocks * ALIGN) };
        buf[..bytes.len()].copy_from_slice(bytes);
        buf[bytes.len()..].fill(0);
        (&file).write_all(buf)
    })?;
    // The last block was padded; the file is as long as the blob.
    file.set_len(bytes.len() as u64)?;
    file.sync_data()
}
