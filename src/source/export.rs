//! Exporting a commit's tree into the cache as plain files:
//! `<cache>/<repo-hash>/<sha>/`, written under a temporary name and renamed
//! into place, so a directory with a commit's name is always complete and is
//! reused as it is by later runs.
//!
//! Blobs keep their executable bit (mode `100755` → `0o755`), symlinks are
//! recreated as symlinks (whether they lead outside is for
//! [`super::Checkout::resolve`] to judge), submodules are skipped with a
//! warning. Entry names git would refuse to check out (`..`, `.git`, names
//! with `/`) are skipped too.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Oid, Repository, Tree};

use super::SourceError;

const MODE_EXECUTABLE: i32 = 0o100755;
const MODE_SYMLINK: i32 = 0o120000;

/// Exports commit `oid` of `repo` (named `name` in messages) under
/// `repo_cache`, returning the export's directory. Reuses a complete export.
pub(crate) fn export_commit(
    repo: &Repository,
    name: &str,
    oid: Oid,
    repo_cache: &Path,
) -> Result<PathBuf, SourceError> {
    let sha = oid.to_string();
    let target = repo_cache.join(&sha);
    if target.is_dir() {
        return Ok(target);
    }
    std::fs::create_dir_all(repo_cache).map_err(|e| SourceError::io(repo_cache, e))?;
    let tmp = repo_cache.join(format!(".tmp-{sha}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir(&tmp).map_err(|e| SourceError::io(&tmp, e))?;

    let written = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| SourceError::git(name, &e))
        .and_then(|tree| write_tree(repo, name, &tree, &tmp, ""));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, &target) {
        Ok(()) => {
            tracing::debug!(repo = name, commit = %sha, dir = %target.display(), "exported commit");
            Ok(target)
        }
        // Another process (or thread) finished the same export first.
        Err(_) if target.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(target)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(SourceError::io(&target, e))
        }
    }
}

fn write_tree(
    repo: &Repository,
    name: &str,
    tree: &Tree<'_>,
    dir: &Path,
    prefix: &str,
) -> Result<(), SourceError> {
    for entry in tree.iter() {
        let raw = entry.name_bytes();
        let shown = format!("{prefix}{}", String::from_utf8_lossy(raw));
        if !safe_name(raw) {
            tracing::warn!(repo = name, path = %shown, "skipping a tree entry with an unsafe name");
            continue;
        }
        let path = dir.join(os_name(raw));
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo
                    .find_tree(entry.id())
                    .map_err(|e| SourceError::git(name, &e))?;
                std::fs::create_dir(&path).map_err(|e| SourceError::io(&path, e))?;
                write_tree(repo, name, &sub, &path, &format!("{shown}/"))?;
            }
            Some(ObjectType::Blob) => {
                let blob = repo
                    .find_blob(entry.id())
                    .map_err(|e| SourceError::git(name, &e))?;
                let mode = entry.filemode();
                if mode == MODE_SYMLINK {
                    write_symlink(&path, blob.content())?;
                } else {
                    std::fs::write(&path, blob.content()).map_err(|e| SourceError::io(&path, e))?;
                    set_mode(&path, mode == MODE_EXECUTABLE)?;
                }
            }
            Some(ObjectType::Commit) => {
                tracing::warn!(repo = name, path = %shown, "skipping submodule: submodules are not fetched");
            }
            _ => {
                tracing::warn!(repo = name, path = %shown, "skipping a tree entry of unknown kind");
            }
        }
    }
    Ok(())
}

/// A single path component git would check out.
fn safe_name(raw: &[u8]) -> bool {
    !(raw.is_empty()
        || raw == b"."
        || raw == b".."
        || raw.eq_ignore_ascii_case(b".git")
        || raw.iter().any(|&b| b == b'/' || b == b'\\' || b == 0))
}

#[cfg(unix)]
fn os_name(raw: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(raw).to_os_string()
}

#[cfg(not(unix))]
fn os_name(raw: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(raw).into_owned())
}

#[cfg(unix)]
fn write_symlink(path: &Path, target: &[u8]) -> Result<(), SourceError> {
    std::os::unix::fs::symlink(os_name(target), path).map_err(|e| SourceError::io(path, e))
}

#[cfg(not(unix))]
fn write_symlink(path: &Path, target: &[u8]) -> Result<(), SourceError> {
    // Without symlinks, git itself writes the target as the file's content.
    std::fs::write(path, target).map_err(|e| SourceError::io(path, e))
}

#[cfg(unix)]
fn set_mode(path: &Path, executable: bool) -> Result<(), SourceError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SourceError::io(path, e))
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _executable: bool) -> Result<(), SourceError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_names_are_refused() {
        for bad in [
            &b""[..],
            b".",
            b"..",
            b".git",
            b".GIT",
            b"a/b",
            b"a\\b",
            b"a\0",
        ] {
            assert!(!safe_name(bad), "{bad:?}");
        }
        for good in [&b"a"[..], b".gitignore", b"..a", b"x.git"] {
            assert!(safe_name(good), "{good:?}");
        }
    }
}
