//! Atomic writes: a file or a directory appears complete under its final name or not at all
//! (written under a temporary sibling name, synced, then renamed).

use std::io::Write;
use std::path::Path;

use super::TrainError;

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename durable (best effort: not every platform can sync a directory).
fn sync_dir(dir: &Path) {
    if let Ok(f) = std::fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory + rename).
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = parent_of(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".graft-tmp-")
        .tempfile_in(dir)
        .map_err(|e| TrainError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| TrainError::io(path, e))?;
    // Temporary files are created owner-only (0600); the result is an ordinary file (0644,
    // like the GGUF adapter written beside it).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(|e| TrainError::io(path, e))?;
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| TrainError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| TrainError::io(path, e.error))?;
    sync_dir(dir);
    Ok(())
}

/// Creates directory `dir` holding `files` atomically: they are written into a temporary
/// sibling directory, synced, and the directory is renamed into place. `dir` must not exist.
pub fn write_dir_atomic(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), TrainError> {
    let parent = parent_of(dir);
    std::fs::create_dir_all(parent).map_err(|e| TrainError::io(parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".graft-tmp-")
        .tempdir_in(parent)
        .map_err(|e| TrainError::io(parent, e))?;
    for (name, bytes) in files {
        let p = tmp.path().join(name);
        let mut f = std::fs::File::create(&p).map_err(|e| TrainError::io(&p, e))?;
        f.write_all(bytes).map_err(|e| TrainError::io(&p, e))?;
        f.sync_all().map_err(|e| TrainError::io(&p, e))?;
    }
    sync_dir(tmp.path());
    // On failure `tmp` is dropped and removed; on success it no longer exists.
    std::fs::rename(tmp.path(), dir).map_err(|e| TrainError::io(dir, e))?;
    let _ = tmp.keep();
    sync_dir(parent);
    Ok(())
}
