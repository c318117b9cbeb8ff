//! Atomic file and directory writes: what graft writes (models, adapters, checkpoints, data
//! splits, metrics) appears complete under its final name or not at all. Everything is written
//! under a temporary sibling name in the same directory, fsynced, then renamed into place, and
//! the directory is fsynced to make the rename durable (where the platform can).
//!
//! Errors are plain `std::io::Error`s; each crate wraps them with the path in its own error type.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The directory a path lives in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename durable (best effort: not every platform can open and sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// A temporary file in `dir` (`.graft-tmp-*`) that becomes an ordinary file when persisted:
/// 0644 on Unix, like one `cp` would make, not the 0600 of a temporary file. For writers that
/// rename several files into place together; [`write_file_with`] does one.
pub fn temp_file_in(dir: &Path) -> io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX);
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    builder.tempfile_in(dir)
}

/// Writes the file at `path` atomically with `write`, which gets a buffered writer over a
/// temporary file in the same directory. The result is an ordinary file (0644 on Unix, like
/// one `cp` would make, not the 0600 of a temporary file). On any error the temporary file is
/// removed and `path` is untouched. `E` is the caller's error type; `io_err` wraps the I/O
/// failures of the temporary file itself.
pub fn write_file_with<E>(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<&File>) -> Result<(), E>,
    io_err: impl Fn(io::Error) -> E,
) -> Result<(), E> {
    let dir = parent_of(path);
    let tmp = temp_file_in(dir).map_err(&io_err)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        write(&mut w)?;
        w.flush().map_err(&io_err)?;
    }
    tmp.as_file().sync_all().map_err(&io_err)?;
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Writes `bytes` to `path` atomically (see [`write_file_with`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file_with(path, |w| w.write_all(bytes), |e| e)
}

/// The prefix of every temporary name graft's writers use (files and directories): what a
/// killed writer leaves behind is recognisable, and [`remove_stale`] removes it.
pub const TEMP_PREFIX: &str = ".graft-tmp-";

/// Removes what killed writers left in `dir`: entries whose names start with [`TEMP_PREFIX`].
/// Call only while no other writer works in `dir`. A missing `dir` is not an error.
pub fn remove_stale(dir: &Path) -> io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
    }
    Ok(())
}

/// Removes directory `dir` so that a kill part-way never leaves a half-deleted `dir` under its
/// own name: it is first renamed to a [`TEMP_PREFIX`] sibling (atomic), then deleted; a kill
/// during the deletion leaves only a temporary name that [`remove_stale`] cleans.
pub fn remove_dir(dir: &Path) -> io::Result<()> {
    let doomed = sibling(dir, "tmp")?;
    std::fs::rename(dir, &doomed)?;
    std::fs::remove_dir_all(&doomed)
}

/// A sibling path of `target` that no other writer uses: `.graft-tmp-<name>.tmp-<pid>-<nanos>`
/// for temporaries (`tag` "tmp"), `.<name>.<tag>-<pid>-<nanos>` otherwise (the previous
/// version of a directory being replaced: never removed by [`remove_stale`]).
fn sibling(target: &Path, tag: &str) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path has no file name"))?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut s = if tag == "tmp" {
        std::ffi::OsString::from(TEMP_PREFIX)
    } else {
        std::ffi::OsString::from(".")
    };
    s.push(name);
    s.push(format!(".{tag}-{}-{nanos}", std::process::id()));
    Ok(target.with_file_name(s))
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates directory `dir` holding `files` (name, bytes) atomically: they are written into a
/// temporary sibling directory, synced, and that directory is renamed to `dir`. An existing
/// `dir` is moved aside first and removed after the swap; if the swap fails it is put back.
/// An existing non-directory at `dir` is an error. Missing parent directories are created.
pub fn write_dir(dir: &Path, files: &[(&str, &[u8])]) -> io::Result<()> {
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent)?;
    if dir.exists() && !dir.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a directory", dir.display()),
        ));
    }
    let tmp = sibling(dir, "tmp")?;
    std::fs::create_dir(&tmp)?;
    let filled = files
        .iter()
        .try_for_each(|(name, bytes)| write_synced(&tmp.join(name), bytes));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    sync_dir(&tmp);
    let old = if dir.exists() {
        let old = sibling(dir, "old")?;
        if let Err(e) = std::fs::rename(dir, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Some(old)
    } else {
        None
    };
    if let Err(e) = std::fs::rename(&tmp, dir) {
        if let Some(old) = &old {
            let _ = std::fs::rename(old, dir);
        }
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    sync_dir(parent);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.bin");
        write_file(&p, b"one").expect("write");
        write_file(&p, b"two").expect("rewrite");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 1);
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.bin");
        write_file(&p, b"old").expect("write");
        let r: Result<(), String> = write_file_with(
            &p,
            |w| {
                w.write_all(b"half").map_err(|e| e.to_string())?;
                Err("stopped".into())
            },
            |e| e.to_string(),
        );
        assert_eq!(r, Err("stopped".to_string()));
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn file_is_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.bin");
        write_file(&p, b"x").expect("write");
        let mode = std::fs::metadata(&p).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn dir_is_created_then_replaced_whole() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join("sub/ckpt");
        write_dir(&dir, &[("a", b"1"), ("b", b"2")]).expect("write");
        write_dir(&dir, &[("c", b"3")]).expect("replace");
        let mut names: Vec<_> = std::fs::read_dir(&dir)
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, vec![std::ffi::OsString::from("c")]);
        assert_eq!(
            std::fs::read_dir(d.path().join("sub")).expect("ls").count(),
            1
        );
    }

    #[test]
    fn dir_over_a_file_is_an_error_and_keeps_the_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x");
        std::fs::write(&p, b"keep").expect("write");
        assert!(write_dir(&p, &[("a", b"1")]).is_err());
        assert_eq!(std::fs::read(&p).expect("read"), b"keep");
        assert_eq!(std::fs::read_dir(d.path()).expect("ls").count(), 1);
    }
}
