//! Packaged charts (`NAME-VERSION.tgz`): reading and safe unpacking.
//!
//! A chart archive holds one top directory (the chart's name) with the
//! chart's files. Unpacking refuses what `helm` refuses and more: absolute
//! paths, `..`, links of any kind, device files; and it caps the size (the
//! compressed archive, each file and the total unpacked), so a hostile
//! repository cannot fill the disk or write outside the target directory.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The most a chart archive may weigh, compressed.
pub const MAX_ARCHIVE_BYTES: u64 = 64 * 1024 * 1024;
/// The most a chart may weigh unpacked (Helm's own limit is 100 MiB).
pub const MAX_UNPACKED_BYTES: u64 = 100 * 1024 * 1024;
/// The most one file of a chart may weigh (Helm's own limit is 5 MiB).
pub const MAX_FILE_BYTES: u64 = 5 * 1024 * 1024;

/// Why an archive was refused; the caller names the chart and URL.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArchiveError {
    #[error("is not a gzip-compressed tar archive: {0}")]
    Format(String),
    #[error("entry \"{0}\" leads outside the chart (absolute path or \"..\")")]
    Escapes(String),
    #[error("entry \"{0}\" is a link or special file; charts hold only files and directories")]
    NotAFile(String),
    #[error("entry \"{entry}\" is larger than {} MiB", limit / (1024 * 1024))]
    FileTooLarge { entry: String, limit: u64 },
    #[error("unpacks to more than {} MiB", limit / (1024 * 1024))]
    TooLarge { limit: u64 },
    #[error("holds more than one top directory (\"{0}\" and \"{1}\")")]
    SeveralCharts(String, String),
    #[error("holds no Chart.yaml in its top directory")]
    NoChart,
    #[error("cannot write {}: {message}", path.display())]
    Io { path: PathBuf, message: String },
}

/// Unpacks `tgz` into `dest` (which must not exist yet): the archive's top
/// directory becomes `dest` itself. Returns the top directory's name.
pub fn unpack(tgz: &[u8], dest: &Path) -> Result<String, ArchiveError> {
    let io = |path: &Path, e: std::io::Error| ArchiveError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let gz = flate2::read::GzDecoder::new(tgz);
    let mut archive = tar::Archive::new(gz);
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::Format(e.to_string()))?;
    let mut top: Option<String> = None;
    let mut total: u64 = 0;
    std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Format(e.to_string()))?;
        let raw = entry
            .path()
            .map_err(|e| ArchiveError::Format(e.to_string()))?
            .into_owned();
        let shown = raw.display().to_string();
        let kind = entry.header().entry_type();
        // pax/GNU metadata entries carry no file.
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        let mut parts = Vec::new();
        for c in raw.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_os_string()),
                Component::CurDir => {}
                _ => return Err(ArchiveError::Escapes(shown)),
            }
        }
        let Some((first, rest)) = parts.split_first() else {
            continue;
        };
        let first = first.to_string_lossy().into_owned();
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => return Err(ArchiveError::SeveralCharts(t.clone(), first)),
            Some(_) => {}
        }
        let target: PathBuf = rest.iter().fold(dest.to_path_buf(), |p, c| p.join(c));
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
            continue;
        }
        if !kind.is_file() {
            return Err(ArchiveError::NotAFile(shown));
        }
        if rest.is_empty() {
            return Err(ArchiveError::Escapes(shown));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > MAX_FILE_BYTES {
            return Err(ArchiveError::FileTooLarge {
                entry: shown,
                limit: MAX_FILE_BYTES,
            });
        }
        total = total.saturating_add(size);
        if total > MAX_UNPACKED_BYTES {
            return Err(ArchiveError::TooLarge {
                limit: MAX_UNPACKED_BYTES,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut entry)
            .take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut data)
            .map_err(|e| ArchiveError::Format(e.to_string()))?;
        if data.len() as u64 > MAX_FILE_BYTES {
            return Err(ArchiveError::FileTooLarge {
                entry: shown,
                limit: MAX_FILE_BYTES,
            });
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        std::fs::write(&target, &data).map_err(|e| io(&target, e))?;
    }
    let top = top.ok_or(ArchiveError::NoChart)?;
    if !dest.join("Chart.yaml").is_file() {
        return Err(ArchiveError::NoChart);
    }
    Ok(top)
}

/// Reads `Chart.yaml` out of an archive without unpacking it (for a vendored
/// `charts/*.tgz`: which chart and version it holds).
pub fn chart_yaml(tgz: &[u8]) -> Result<String, ArchiveError> {
    let gz = flate2::read::GzDecoder::new(tgz);
    let mut archive = tar::Archive::new(gz);
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::Format(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Format(e.to_string()))?;
        let path = entry
            .path()
            .map_err(|e| ArchiveError::Format(e.to_string()))?
            .into_owned();
        let comps: Vec<_> = path.components().collect();
        if comps.len() == 2 && comps[1].as_os_str() == "Chart.yaml" {
            let mut text = String::new();
            (&mut entry)
                .take(MAX_FILE_BYTES)
                .read_to_string(&mut text)
                .map_err(|e| ArchiveError::Format(e.to_string()))?;
            return Ok(text);
        }
    }
    Err(ArchiveError::NoChart)
}

/// Packs a chart directory as `helm package` lays it out (top directory
/// `name`), for tests and for `file://` dependencies.
pub fn pack(dir: &Path, name: &str) -> std::io::Result<Vec<u8>> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut builder = tar::Builder::new(gz);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_dir_all(name, dir)?;
    builder.into_inner()?.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Write the raw name so hostile paths reach the reader unchanged.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn unpacks_a_chart_and_reads_its_chart_yaml() {
        let t = tgz(&[
            ("web/Chart.yaml", b"name: web\nversion: 1.0.0\n"),
            ("web/templates/cm.yaml", b"kind: ConfigMap\n"),
        ]);
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("out");
        assert_eq!(unpack(&t, &dest).unwrap(), "web");
        assert!(dest.join("templates/cm.yaml").is_file());
        assert!(chart_yaml(&t).unwrap().contains("version: 1.0.0"));
    }

    #[test]
    fn hostile_archives_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let e = unpack(
            &tgz(&[("web/Chart.yaml", b"x"), ("web/../../evil", b"x")]),
            &d.path().join("a"),
        )
        .unwrap_err();
        assert!(matches!(e, ArchiveError::Escapes(_)), "{e}");
        assert!(!d.path().join("evil").exists());
        let e = unpack(
            &tgz(&[("web/Chart.yaml", b"x"), ("db/Chart.yaml", b"x")]),
            &d.path().join("b"),
        )
        .unwrap_err();
        assert!(matches!(e, ArchiveError::SeveralCharts(..)), "{e}");
        let e = unpack(b"not gzip at all", &d.path().join("c")).unwrap_err();
        assert!(matches!(e, ArchiveError::Format(_)), "{e}");
        let e = unpack(&tgz(&[("web/values.yaml", b"x")]), &d.path().join("d")).unwrap_err();
        assert_eq!(e, ArchiveError::NoChart);
    }

    #[test]
    fn a_symlink_entry_is_refused() {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "web/link", "/etc/passwd").unwrap();
        let t = b.into_inner().unwrap().finish().unwrap();
        let d = tempfile::tempdir().unwrap();
        let e = unpack(&t, &d.path().join("a")).unwrap_err();
        assert!(matches!(e, ArchiveError::NotAFile(_)), "{e}");
    }
}
