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

    let base = newest_export(repo, repo_cache, &sha);
    let base = base.as_ref().map(|(tree, dir)| Base {
        tree,
        dir: dir.as_path(),
    });
    let written = repo
        .find_commit(oid)
        .and_then(|c| c.tree())
        .map_err(|e| SourceError::git(name, &e))
        .and_then(|tree| write_tree(repo, name, &tree, &tmp, "", base));
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

/// Exports only `path` (a directory or a file) of commit `oid` into `dir`
/// (as `dir/<path>`), written under a temporary name in `repo_cache` and
/// renamed into place; an existing `dir` is complete and is reused. Returns
/// false, exporting nothing, when `path` is not in the commit or when what
/// it holds could read content from elsewhere in the repository: a
/// symlink, a submodule, a jsonnet file (see [`self_contained`]).
pub(crate) fn export_path(
    repo: &Repository,
    name: &str,
    oid: Oid,
    path: &Path,
    repo_cache: &Path,
    dir: &Path,
) -> Result<bool, SourceError> {
    if dir.is_dir() {
        return Ok(true);
    }
    let git = |e: git2::Error| SourceError::git(name, &e);
    let root = repo.find_commit(oid).and_then(|c| c.tree()).map_err(git)?;
    let Ok(entry) = root.get_path(path) else {
        return Ok(false);
    };
    let subtree = match entry.kind() {
        Some(ObjectType::Tree) => {
            let tree = repo.find_tree(entry.id()).map_err(git)?;
            if !self_contained(&tree) {
                return Ok(false);
            }
            Some(tree)
        }
        Some(ObjectType::Blob)
            if entry.filemode() != MODE_SYMLINK && !foreign(entry.name_bytes()) =>
        {
            None
        }
        _ => return Ok(false),
    };
    std::fs::create_dir_all(repo_cache).map_err(|e| SourceError::io(repo_cache, e))?;
    let tmp = repo_cache.join(format!(".tmp-{oid}-{}", uuid::Uuid::new_v4().simple()));
    let target = tmp.join(path);
    let written = (|| {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| SourceError::io(parent, e))?;
        }
        match &subtree {
            Some(tree) => {
                std::fs::create_dir(&target).map_err(|e| SourceError::io(&target, e))?;
                let shown = format!("{}/", path.display());
                write_tree(repo, name, tree, &target, &shown, None)
            }
            None => {
                let blob = repo.find_blob(entry.id()).map_err(git)?;
                std::fs::write(&target, blob.content()).map_err(|e| SourceError::io(&target, e))?;
                set_mode(&target, entry.filemode() == MODE_EXECUTABLE)
            }
        }
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(true),
        // Another thread or process finished the same export first.
        Err(_) if dir.is_dir() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(true)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(SourceError::io(dir, e))
        }
    }
}

/// Whether a file of this name can read other files of the repository
/// (jsonnet imports).
pub(crate) fn foreign(name: &[u8]) -> bool {
    name.ends_with(b".jsonnet") || name.ends_with(b".libsonnet")
}

/// Whether nothing under `tree` could pull content from elsewhere in the
/// repository: no symlink, no submodule, no jsonnet file.
pub(crate) fn self_contained(tree: &Tree<'_>) -> bool {
    let mut contained = true;
    let walked = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.filemode() == MODE_SYMLINK
            || entry.kind() == Some(ObjectType::Commit)
            || foreign(entry.name_bytes())
        {
            contained = false;
            git2::TreeWalkResult::Abort
        } else {
            git2::TreeWalkResult::Ok
        }
    });
    // An aborted walk reports an error: only a finished walk counts.
    contained && walked.is_ok()
}

/// A complete export of another commit: its tree and its directory.
#[derive(Clone, Copy)]
struct Base<'a, 'r> {
    tree: &'a Tree<'r>,
    dir: &'a Path,
}

/// Whether `name` is an export's directory name (a full commit sha).
fn is_export_name(name: &str) -> bool {
    name.len() == 40 && name.chars().all(|c| c.is_ascii_hexdigit())
}

/// The most recently completed export under `repo_cache` other than
/// `except`, with its commit's tree (None when there is none usable).
fn newest_export<'r>(
    repo: &'r Repository,
    repo_cache: &Path,
    except: &str,
) -> Option<(Tree<'r>, PathBuf)> {
    let mut best: Option<(std::time::SystemTime, String, PathBuf)> = None;
    for e in std::fs::read_dir(repo_cache).ok()?.flatten() {
        let Some(n) = e.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !is_export_name(&n) || n == except {
            continue;
        }
        let Ok(modified) = e.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if best.as_ref().is_none_or(|(t, _, _)| modified > *t) {
            best = Some((modified, n, e.path()));
        }
    }
    let (_, sha, dir) = best?;
    let tree = Oid::from_str(&sha)
        .and_then(|o| repo.find_commit(o))
        .and_then(|c| c.tree())
        .ok()?;
    Some((tree, dir))
}

fn write_tree(
    repo: &Repository,
    name: &str,
    tree: &Tree<'_>,
    dir: &Path,
    prefix: &str,
    base: Option<Base<'_, '_>>,
) -> Result<(), SourceError> {
    for entry in tree.iter() {
        let raw = entry.name_bytes();
        let shown = format!("{prefix}{}", String::from_utf8_lossy(raw));
        if !safe_name(raw) {
            tracing::warn!(repo = name, path = %shown, "skipping a tree entry with an unsafe name");
            continue;
        }
        let path = dir.join(os_name(raw));
        let same_in_base = base.and_then(|b| {
            b.tree
                .get_name_bytes(raw)
                .map(|old| (old, b.dir.join(os_name(raw))))
        });
        match entry.kind() {
            Some(ObjectType::Tree) => {
                let sub = repo
                    .find_tree(entry.id())
                    .map_err(|e| SourceError::git(name, &e))?;
                std::fs::create_dir(&path).map_err(|e| SourceError::io(&path, e))?;
                let old_sub = same_in_base.and_then(|(old, old_dir)| {
                    (old.kind() == Some(ObjectType::Tree))
                        .then(|| repo.find_tree(old.id()).ok())
                        .flatten()
                        .map(|t| (t, old_dir))
                });
                let sub_base = old_sub.as_ref().map(|(t, d)| Base {
                    tree: t,
                    dir: d.as_path(),
                });
                write_tree(repo, name, &sub, &path, &format!("{shown}/"), sub_base)?;
            }
            Some(ObjectType::Blob) => {
                let mode = entry.filemode();
                if mode != MODE_SYMLINK {
                    if let Some((old, old_path)) = &same_in_base {
                        if old.id() == entry.id()
                            && old.filemode() == mode
                            && std::fs::hard_link(old_path, &path).is_ok()
                        {
                            continue;
                        }
                    }
                }
                let blob = repo
                    .find_blob(entry.id())
                    .map_err(|e| SourceError::git(name, &e))?;
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

    /// Commits the files of `dir` (all of them, deletions included).
    fn commit_all(repo: &Repository, message: &str) -> Oid {
        let mut index = repo.index().unwrap();
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .unwrap();
        index.update_all(["*"], None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@example.com").unwrap();
        let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
            .unwrap()
    }

    /// Writes `text` to `root/p`, creating its directories.
    fn write_file(root: &std::path::Path, p: &str, text: &str) {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_later_commit_links_unchanged_files_from_the_newest_export() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let work = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let repo = Repository::init(work.path()).unwrap();
        let w = |p: &str, text: &str| write_file(work.path(), p, text);
        w("a/same.yaml", "same");
        w("a/changed.yaml", "v1");
        w("b/gone.yaml", "gone");
        w("run.sh", "#!/bin/sh");
        std::fs::set_permissions(
            work.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let c1 = commit_all(&repo, "one");
        let d1 = export_commit(&repo, "r", c1, cache.path()).unwrap();

        w("a/changed.yaml", "v2");
        w("c/new.yaml", "new");
        std::fs::remove_file(work.path().join("b/gone.yaml")).unwrap();
        let c2 = commit_all(&repo, "two");
        let d2 = export_commit(&repo, "r", c2, cache.path()).unwrap();
        assert_ne!(d1, d2);

        let ino = |d: &Path, p: &str| std::fs::metadata(d.join(p)).unwrap().ino();
        let read = |d: &Path, p: &str| std::fs::read_to_string(d.join(p)).unwrap();
        // Unchanged files share the first export's inode; the rest are new.
        assert_eq!(ino(&d1, "a/same.yaml"), ino(&d2, "a/same.yaml"));
        assert_eq!(ino(&d1, "run.sh"), ino(&d2, "run.sh"));
        assert_ne!(ino(&d1, "a/changed.yaml"), ino(&d2, "a/changed.yaml"));
        assert_eq!(read(&d1, "a/changed.yaml"), "v1");
        assert_eq!(read(&d2, "a/changed.yaml"), "v2");
        assert_eq!(read(&d2, "c/new.yaml"), "new");
        assert!(!d2.join("b/gone.yaml").exists());
        assert!(!d2.join("b").exists(), "an empty directory is not exported");
        let mode = std::fs::metadata(d2.join("run.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);

        // Removing the first export leaves the second whole.
        std::fs::remove_dir_all(&d1).unwrap();
        assert_eq!(read(&d2, "a/same.yaml"), "same");
        assert_eq!(read(&d2, "run.sh"), "#!/bin/sh");
    }

    #[test]
    fn an_export_named_for_an_unknown_commit_is_no_base() {
        let work = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let repo = Repository::init(work.path()).unwrap();
        std::fs::write(work.path().join("x.yaml"), "x").unwrap();
        let c1 = commit_all(&repo, "one");
        // A directory with a commit's name that this repository lacks.
        let stray = cache
            .path()
            .join("0123456789abcdef0123456789abcdef01234567");
        std::fs::create_dir_all(&stray).unwrap();
        std::fs::write(stray.join("x.yaml"), "wrong").unwrap();
        let d = export_commit(&repo, "r", c1, cache.path()).unwrap();
        assert_eq!(std::fs::read_to_string(d.join("x.yaml")).unwrap(), "x");
    }

    #[cfg(unix)]
    #[test]
    fn one_path_is_exported_alone_unless_it_can_read_elsewhere() {
        let work = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let repo = Repository::init(work.path()).unwrap();
        let w = |p: &str, text: &str| write_file(work.path(), p, text);
        w("apps/a/one.yaml", "one");
        w("apps/a/deep/two.yaml", "two");
        w("apps/b/other.yaml", "other");
        w("root.yaml", "root");
        w("linked/own.yaml", "own");
        std::os::unix::fs::symlink("../root.yaml", work.path().join("linked/root.yaml")).unwrap();
        w("lib/main.jsonnet", "{}");
        let c = commit_all(&repo, "one");
        let export = |path: &str, name: &str| {
            let dir = cache.path().join(name);
            let done = export_path(&repo, "r", c, Path::new(path), cache.path(), &dir).unwrap();
            (done, dir)
        };

        // A directory: its files at their paths, nothing else of the commit.
        let (done, dir) = export("apps/a", "a");
        assert!(done);
        let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
        assert_eq!(read("apps/a/one.yaml"), "one");
        assert_eq!(read("apps/a/deep/two.yaml"), "two");
        assert!(!dir.join("apps/b").exists());
        assert!(!dir.join("root.yaml").exists());
        // Done again: the complete export is reused as it is.
        assert!(export("apps/a", "a").0);

        // A file.
        let (done, dir) = export("root.yaml", "root");
        assert!(done);
        assert_eq!(
            std::fs::read_to_string(dir.join("root.yaml")).unwrap(),
            "root"
        );

        // A symlink or a jsonnet file could read elsewhere; a missing path
        // is for the whole export to report: nothing is exported.
        for (path, name) in [("linked", "l"), ("lib", "j"), ("missing", "m")] {
            let (done, dir) = export(path, name);
            assert!(!done, "{path}");
            assert!(!dir.exists(), "{path}");
        }
        // No temporary directory is left behind.
        let left: Vec<String> = std::fs::read_dir(cache.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
