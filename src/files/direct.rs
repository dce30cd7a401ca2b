//! Direct I/O (`O_DIRECT`) for large files received onto a disk: the bytes
//! go from the receiver's page-aligned buffer to the device, with no copy
//! into the page cache, no dirty pages to write back, and nothing for the
//! final fsync to do but the metadata and the device's cache.
//!
//! Why: a durable 1 GiB download through the page cache spent most of its
//! CPU copying into page-cache folios, and on this VM (Firecracker, free
//! page reporting) those copies ran up to four times slower whenever the
//! folios came from memory the host had taken back: the same download took
//! 0.8 or 1.6 s, by chance. `dd oflag=direct` writes 1 GiB here in 0.88 s,
//! against 2.2-3.8 s for buffered writes and an fsync. A file must reach
//! the disk before it takes its final name anyway, so skipping the page
//! cache loses nothing the receiver needs.
//!
//! Not for: small files (under [`MIN_LEN`]: one synchronous device write
//! per block costs more than the copy saves), tmpfs (no device: the page
//! cache is the file), a transfer that resumes from an offset that is not
//! a multiple of [`ALIGN`], or a file system that refuses the flag. Those
//! keep the page cache. Direct writes must start at, and be a length of, a
//! multiple of [`ALIGN`] from a buffer aligned to it: the receiver writes
//! the aligned part of each block and carries the rest into the next one,
//! and writes the file's last bytes after turning the flag off. A direct
//! write the kernel refuses (`EINVAL`: a device with larger blocks) turns
//! the flag off and is written again through the page cache.
//!
//! Linux only; elsewhere [`enable`] says no.

use std::fs::File;

/// Offsets and lengths of direct writes are multiples of this (the
/// largest logical block size of common devices; the buffers are pages).
pub const ALIGN: usize = 4096;

/// Files smaller than this are written through the page cache.
pub const MIN_LEN: u64 = 8 << 20;

/// Turns direct I/O on for `file`, about to be written from its current
/// position, if that position is aligned and the file is on a file system
/// with a device under it that accepts the flag. Returns whether it is on.
#[cfg(target_os = "linux")]
pub fn enable(file: &File) -> bool {
    use std::io::Seek;
    use std::os::fd::AsRawFd;
    let mut f = file;
    match f.stream_position() {
        Ok(at) if at % ALIGN as u64 == 0 => {}
        _ => return false,
    }
    // SAFETY: `statfs` is plain data, all-zero is a valid value, and
    // `fstatfs` only writes it for a descriptor `file` owns.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) } != 0 {
        return false;
    }
    #[allow(clippy::unnecessary_cast)] // f_type's type differs by platform
    if fs.f_type as i64 == libc::TMPFS_MAGIC as i64 {
        return false;
    }
    set(file, true).is_ok()
}

#[cfg(not(target_os = "linux"))]
pub fn enable(_file: &File) -> bool {
    false
}

/// Turns direct I/O off again (the page cache for whatever follows).
#[cfg(target_os = "linux")]
pub fn disable(file: &File) -> std::io::Result<()> {
    set(file, false)
}

#[cfg(not(target_os = "linux"))]
pub fn disable(_file: &File) -> std::io::Result<()> {
    Ok(())
}

/// Whether a direct write failed for being direct (alignment), so that
/// writing the same bytes through the page cache would do.
pub fn refused(e: &std::io::Error) -> bool {
    #[cfg(target_os = "linux")]
    {
        e.raw_os_error() == Some(libc::EINVAL)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = e;
        false
    }
}

#[cfg(target_os = "linux")]
fn set(file: &File, on: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL read and change the status flags of a
    // descriptor `file` owns for the whole call; nothing else is touched.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let want = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        if want != flags && libc::fcntl(fd, libc::F_SETFL, want) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn an_unaligned_position_keeps_the_page_cache() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let mut f = File::create(d.path().join("f")).unwrap();
        f.write_all(b"abc").unwrap();
        assert!(!enable(&f));
    }

    #[test]
    fn tmpfs_keeps_the_page_cache() {
        let Ok(d) = tempfile::tempdir_in("/dev/shm") else {
            return; // no tmpfs here
        };
        let f = File::create(d.path().join("f")).unwrap();
        assert!(!enable(&f));
    }

    #[test]
    fn the_flag_goes_on_and_off() {
        use std::os::fd::AsRawFd;
        let d = tempfile::tempdir().unwrap();
        let f = File::create(d.path().join("f")).unwrap();
        let on = |f: &File| unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETFL) } & libc::O_DIRECT;
        if enable(&f) {
            assert_ne!(on(&f), 0);
        }
        disable(&f).unwrap();
        assert_eq!(on(&f), 0);
    }
}
