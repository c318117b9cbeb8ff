//! Atomic directory writes: a PEFT adapter directory appears complete or not at all (GGUF
//! files are written atomically by `GgufWriter::write_file`).

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::AdapterError;

/// A sibling path of `target` that no other writer uses: `.<name>.<tag>-<pid>-<nanos>`.
fn sibling(target: &Path, tag: &str) -> Result<PathBuf, AdapterError> {
    let name = target
        .file_name()
        .ok_or_else(|| AdapterError::UnknownFormat {
            path: target.to_path_buf(),
            reason: "path has no file name".into(),
        })?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{tag}-{}-{nanos}", std::process::id()));
    Ok(target.with_file_name(s))
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), AdapterError> {
    let mut f = std::fs::File::create(path).map_err(|e| AdapterError::io(path, e))?;
    f.write_all(bytes).map_err(|e| AdapterError::io(path, e))?;
    f.sync_all().map_err(|e| AdapterError::io(path, e))
}

/// Writes `files` (name, bytes) into a temporary sibling directory of `dir`, then renames it
/// to `dir`. An existing `dir` is first moved aside and removed after the swap; if the swap
/// fails it is put back.
pub fn write_dir_atomic(dir: &Path, files: &[(&str, &[u8])]) -> Result<(), AdapterError> {
    let tmp = sibling(dir, "tmp")?;
    std::fs::create_dir(&tmp).map_err(|e| AdapterError::io(&tmp, e))?;
    let filled = files
        .iter()
        .try_for_each(|(name, bytes)| write_synced(&tmp.join(name), bytes));
    if let Err(e) = filled {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old = if dir.exists() {
        if !dir.is_dir() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(AdapterError::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                ),
            ));
        }
        let old = sibling(dir, "old")?;
        if let Err(e) = std::fs::rename(dir, &old) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(AdapterError::io(dir, e));
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
        return Err(AdapterError::io(dir, e));
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}
