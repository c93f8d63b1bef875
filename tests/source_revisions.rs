//! Integration tests of `kubesync::source` against real git repositories built
//! in temp directories with the `git` CLI (and git2 where the CLI is
//! awkward): revision modes, work tree vs commit content, exports, the path
//! guard, overrides, origin mapping, remote clones and unreachable remotes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kubesync::model::{RepoPath, RevisionSpec};
use kubesync::source::{Checkout, RepoOverride, Revision, SourceError, SourceOptions, Sources};

/// Runs git in `dir` with a fixed identity, no user or system config, and
/// (when given) a fixed author/committer time.
fn git_at(dir: &Path, time: Option<i64>, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args(["-c", "init.defaultBranch=main", "-c", "tag.gpgSign=false"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com");
    if let Some(t) = time {
        let date = format!("@{t} +0000");
        cmd.env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
    }
    let out = cmd.output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_at(dir, None, args)
}

fn write(path: &Path, content: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(path, content).unwrap();
}

fn commit_all(dir: &Path, time: i64, msg: &str) -> String {
    git(dir, &["add", "-A"]);
    git_at(dir, Some(time), &["commit", "-q", "-m", msg]);
    git(dir, &["rev-parse", "HEAD"])
}

fn read(co: &Checkout, rel: &str) -> String {
    std::fs::read_to_string(co.dir.join(rel)).unwrap()
}

fn rev(s: &str) -> RevisionSpec {
    s.parse().unwrap()
}

fn rp(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

/// A repository with history:
///
/// ```text
/// c1 (tag v1.0, lightweight) ─ c2 (tag v1.1, annotated) ─ c4   main (HEAD)
///                                 └─ c3 (tag v9.9, annotated)   feature
/// ```
/// plus an uncommitted edit of `apps/a/x.yaml` in the work tree.
struct Fixture {
    _tmp: tempfile::TempDir,
    outside: PathBuf,
    root: PathBuf,
    c1: String,
    c2: String,
    c3: String,
    c4: String,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    write(&outside.join("secret.yaml"), "secret: 1\n");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    git(&root, &["init", "-q"]);
    write(&root.join("bootstrap/root.yaml"), "kind: Application\n");
    write(&root.join("apps/a/x.yaml"), "v: 1\n");
    write(&root.join("apps/a/transform.sh"), "#!/bin/sh\necho hi\n");
    #[cfg(unix)]
    {
        use std::os::unix::fs::{symlink, PermissionsExt};
        std::fs::set_permissions(
            root.join("apps/a/transform.sh"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        symlink(&outside, root.join("link-out")).unwrap();
        symlink("apps/a", root.join("link-in")).unwrap();
    }
    let c1 = commit_all(&root, 1_000_000, "c1");
    git(&root, &["tag", "v1.0"]);
    write(&root.join("apps/a/x.yaml"), "v: 2\n");
    let c2 = commit_all(&root, 1_000_100, "c2");
    git_at(
        &root,
        Some(1_000_100),
        &["tag", "-a", "v1.1", "-m", "release 1.1"],
    );
    git(&root, &["checkout", "-q", "-b", "feature"]);
    write(&root.join("apps/a/x.yaml"), "v: 3\n");
    let c3 = commit_all(&root, 1_000_300, "c3");
    git_at(
        &root,
        Some(1_000_300),
        &["tag", "-a", "v9.9", "-m", "unmerged"],
    );
    git(&root, &["checkout", "-q", "main"]);
    write(&root.join("apps/a/x.yaml"), "v: 4\n");
    let c4 = commit_all(&root, 1_000_200, "c4");
    write(&root.join("apps/a/x.yaml"), "v: dirty\n");
    Fixture {
        root: std::fs::canonicalize(&root).unwrap(),
        outside,
        _tmp: tmp,
        c1,
        c2,
        c3,
        c4,
    }
}

fn sources_for(root: &Path) -> Sources {
    sources_with(root, Vec::new(), None)
}

fn sources_with(root: &Path, overrides: Vec<RepoOverride>, cache: Option<PathBuf>) -> Sources {
    Sources::new(SourceOptions {
        root_manifest: root.join("bootstrap/root.yaml"),
        overrides,
        cache_dir: cache,
        ..Default::default()
    })
    .unwrap()
}

fn sha_of(co: &Checkout) -> &str {
    co.revision.id().expect("a commit checkout")
}

#[test]
fn work_tree_and_head_differ_by_uncommitted_edits() {
    let f = fixture();
    let s = sources_for(&f.root);
    assert_eq!(s.root_repo().dir, f.root);
    assert!(s.root_repo().is_git);
    assert_eq!(s.root_repo().origin, None);

    let wt = s.checkout(None, None).unwrap();
    assert_eq!(wt.revision, Revision::WorkTree);
    assert_eq!(wt.revision.short(), "worktree");
    assert_eq!(wt.dir, f.root);
    assert_eq!(read(&wt, "apps/a/x.yaml"), "v: dirty\n");

    let head = s.checkout(None, Some(&RevisionSpec::Head)).unwrap();
    assert_eq!(sha_of(&head), f.c4);
    assert_eq!(head.revision.short(), &f.c4[..7]);
    assert_eq!(read(&head, "apps/a/x.yaml"), "v: 4\n");
    assert_ne!(head.dir, f.root);
    assert!(!head.dir.join(".git").exists());

    // Memoised: the same Arc comes back.
    let again = s.checkout(None, Some(&RevisionSpec::Head)).unwrap();
    assert!(std::sync::Arc::ptr_eq(&head, &again));
}

#[test]
fn branches_tags_and_commits_resolve() {
    let f = fixture();
    let s = sources_for(&f.root);
    let cases = [
        ("branch:main", &f.c4),
        ("branch:feature", &f.c3),
        ("feature", &f.c3),
        ("main", &f.c4),
        ("tag:v1.0", &f.c1),
        ("tag:v1.1", &f.c2),
        ("v1.1", &f.c2),
        ("tag:v9.9", &f.c3),
        ("HEAD", &f.c4),
    ];
    for (spec, want) in cases {
        let co = s.checkout(None, Some(&rev(spec))).unwrap();
        assert_eq!(sha_of(&co), want.as_str(), "{spec}");
        match &co.revision {
            Revision::Commit { spec: got, .. } => assert_eq!(got, &rev(spec)),
            other => panic!("{spec}: {other:?}"),
        }
    }
    let co = s.checkout(None, Some(&rev("tag:v1.0"))).unwrap();
    assert_eq!(read(&co, "apps/a/x.yaml"), "v: 1\n");

    // Full and short commit ids, with and without `commit:`.
    for spec in [
        format!("commit:{}", f.c1),
        format!("commit:{}", &f.c1[..7]),
        format!("commit:{}", f.c1.to_uppercase()),
        f.c1[..8].to_string(),
        f.c1.clone(),
    ] {
        let co = s.checkout(None, Some(&rev(&spec))).unwrap();
        assert_eq!(sha_of(&co), f.c1, "{spec}");
        assert_eq!(read(&co, "apps/a/x.yaml"), "v: 1\n");
    }
}

#[test]
fn latest_tag_ignores_tags_off_the_default_branch() {
    let f = fixture();
    let s = sources_for(&f.root);
    let co = s.checkout(None, Some(&RevisionSpec::LatestTag)).unwrap();
    // v9.9 is newer but only on `feature`; v1.1 is the newest on main.
    assert_eq!(sha_of(&co), f.c2);
    assert_eq!(read(&co, "apps/a/x.yaml"), "v: 2\n");

    // Once merged, the feature's tag counts.
    git(&f.root, &["checkout", "-q", "--", "apps/a/x.yaml"]);
    git_at(
        &f.root,
        Some(1_000_400),
        &[
            "merge", "-q", "--no-ff", "-m", "merge", "feature", "-X", "theirs",
        ],
    );
    let s = sources_for(&f.root);
    let co = s.checkout(None, Some(&RevisionSpec::LatestTag)).unwrap();
    assert_eq!(sha_of(&co), f.c3);
}

#[test]
fn latest_tag_breaks_time_ties_by_version() {
    let f = fixture();
    // Same commit, several tags: the highest version wins, a pre-release loses.
    for t in ["v2.0-rc1", "v2.0", "v1.99"] {
        git(&f.root, &["tag", t, &f.c4]);
    }
    let s = sources_for(&f.root);
    let co = s.checkout(None, Some(&RevisionSpec::LatestTag)).unwrap();
    assert_eq!(sha_of(&co), f.c4);
}

#[test]
fn latest_tag_without_tags_is_no_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    git(root, &["init", "-q"]);
    write(&root.join("bootstrap/root.yaml"), "x: 1\n");
    commit_all(root, 1_000_000, "only");
    let s = sources_for(root);
    let err = s
        .checkout(None, Some(&RevisionSpec::LatestTag))
        .unwrap_err();
    assert!(matches!(err, SourceError::NoTags { .. }), "{err:?}");
    assert!(err.to_string().contains("tag:latest"), "{err}");
}

#[test]
fn unknown_revisions_name_repo_revision_and_what_exists() {
    let f = fixture();
    let s = sources_for(&f.root);
    let repo = f.root.display().to_string();

    let err = s.checkout(None, Some(&rev("nope"))).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }),
        "{err:?}"
    );
    for want in [
        repo.as_str(),
        "\"nope\"",
        "branch",
        "tag",
        "feature",
        "main",
        "v1.0",
        "v9.9",
    ] {
        assert!(msg.contains(want), "missing {want:?} in: {msg}");
    }

    let msg = s
        .checkout(None, Some(&rev("branch:v1.0")))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("branch:v1.0") && msg.contains("refs/heads/v1.0"),
        "{msg}"
    );
    assert!(msg.contains("branches: feature, main"), "{msg}");

    let msg = s
        .checkout(None, Some(&rev("tag:v7")))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tag:v7") && msg.contains("tags: v1.0, v1.1, v9.9"),
        "{msg}"
    );

    let msg = s
        .checkout(None, Some(&rev("commit:deadbeef")))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("commit:deadbeef") && msg.contains(&repo),
        "{msg}"
    );
}

#[test]
fn ambiguous_short_commit_says_so() {
    let f = fixture();
    // Write blobs until two object ids share a 4-hex-digit prefix with each
    // other (a birthday collision among 65536 prefixes comes quickly).
    let repo = git2::Repository::open(&f.root).unwrap();
    let mut seen = std::collections::HashMap::new();
    let mut prefix = None;
    for i in 0..20_000 {
        let oid = repo
            .blob(format!("blob {i}\n").as_bytes())
            .unwrap()
            .to_string();
        let p = oid[..4].to_string();
        if seen.insert(p.clone(), oid).is_some() {
            prefix = Some(p);
            break;
        }
    }
    let prefix = prefix.expect("a prefix collision");
    let s = sources_for(&f.root);
    let err = s
        .checkout(None, Some(&rev(&format!("commit:{prefix}"))))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("ambiguous") && msg.contains(&prefix), "{msg}");
    assert!(msg.contains(&f.root.display().to_string()), "{msg}");
}

#[cfg(unix)]
#[test]
fn exports_keep_executable_bits_and_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    let s = sources_for(&f.root);
    let co = s.checkout(None, Some(&RevisionSpec::Head)).unwrap();
    let mode = |p: &str| {
        std::fs::metadata(co.dir.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("apps/a/transform.sh"), 0o755);
    assert_eq!(mode("apps/a/x.yaml"), 0o644);
    let link = std::fs::symlink_metadata(co.dir.join("link-in")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(read(&co, "link-in/x.yaml"), "v: 4\n");
    assert_eq!(co.resolve(&rp("link-in")).unwrap(), co.dir.join("link-in"));
    assert!(co.contains(&co.dir.join("link-in/x.yaml")));
}

#[cfg(unix)]
#[test]
fn symlinks_leading_outside_are_refused() {
    let f = fixture();
    let s = sources_for(&f.root);
    for spec in [None, Some(RevisionSpec::Head)] {
        let co = s.checkout(None, spec.as_ref()).unwrap();
        let err = co.resolve(&rp("link-out")).unwrap_err();
        match &err {
            SourceError::PathEscapes { path, target } => {
                assert!(path.contains("link-out"), "{path}");
                assert_eq!(target, &std::fs::canonicalize(&f.outside).unwrap());
            }
            other => panic!("expected PathEscapes, got {other:?}"),
        }
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!co.contains(&co.dir.join("link-out/secret.yaml")));
        assert!(co.resolve(&rp("apps/a")).is_ok());

        let err = co.resolve(&rp("apps/missing")).unwrap_err();
        assert!(matches!(err, SourceError::PathNotFound { .. }), "{err:?}");
        assert!(err.to_string().contains("apps/missing"), "{err}");
    }
}

#[test]
fn exports_are_reused_from_the_cache_dir() {
    let f = fixture();
    let cache = tempfile::tempdir().unwrap();
    let a = sources_with(&f.root, vec![], Some(cache.path().to_path_buf()));
    let first = a.checkout(None, Some(&rev("tag:v1.0"))).unwrap();
    assert!(first.dir.starts_with(cache.path()));
    assert!(first.dir.ends_with(&f.c1));
    let marker = first.dir.join("kubesync-marker");
    write(&marker, "kept");
    // Another run (another Sources) finds the complete export and keeps it.
    let b = sources_with(&f.root, vec![], Some(cache.path().to_path_buf()));
    let second = b.checkout(None, Some(&rev(&f.c1[..10]))).unwrap();
    assert_eq!(second.dir, first.dir);
    assert!(marker.exists());
    // No temporary directories left behind.
    let leftovers: Vec<_> = walk_names(cache.path())
        .into_iter()
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        out.push(e.file_name().to_string_lossy().into_owned());
        if e.file_type().unwrap().is_dir() {
            out.extend(walk_names(&e.path()));
        }
    }
    out
}

#[test]
fn origin_url_maps_to_the_root_repository() {
    let f = fixture();
    git(
        &f.root,
        &[
            "remote",
            "add",
            "origin",
            "https://bob:s3cret@Git.Example.com/org/config.git",
        ],
    );
    let s = sources_for(&f.root);
    assert_eq!(
        s.root_repo().origin.as_deref(),
        Some("https://Git.Example.com/org/config.git")
    );
    for url in [
        "https://git.example.com/org/config",
        "git@git.example.com:org/config.git",
        "ssh://git@git.example.com/org/config/",
    ] {
        let co = s.checkout(Some(url), None).unwrap();
        assert_eq!(co.revision, Revision::WorkTree, "{url}");
        assert_eq!(co.dir, f.root, "{url}");
        let co = s.checkout(Some(url), Some(&rev("tag:v1.0"))).unwrap();
        assert_eq!(sha_of(&co), f.c1, "{url}");
    }
}

#[test]
fn overrides_render_from_local_directories() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // A git override with an uncommitted edit.
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    git(&other, &["init", "-q"]);
    write(&other.join("app/o.yaml"), "o: committed\n");
    let oc = commit_all(&other, 1_000_000, "o1");
    write(&other.join("app/o.yaml"), "o: edited\n");
    // A plain-directory override.
    let plain = tmp.path().join("plain");
    write(&plain.join("p.yaml"), "p: 1\n");

    let overrides = vec![
        format!("https://git.example.com/org/other.git={}", other.display())
            .parse::<RepoOverride>()
            .unwrap(),
        format!("git@git.example.com:org/plain.git={}", plain.display())
            .parse::<RepoOverride>()
            .unwrap(),
    ];
    let s = sources_with(&f.root, overrides, None);

    let co = s
        .checkout(Some("git@git.example.com:org/other"), None)
        .unwrap();
    assert_eq!(co.revision, Revision::WorkTree);
    assert_eq!(read(&co, "app/o.yaml"), "o: edited\n");
    let co = s
        .checkout(
            Some("https://GIT.example.com/org/other/"),
            Some(&RevisionSpec::Head),
        )
        .unwrap();
    assert_eq!(sha_of(&co), oc);
    assert_eq!(read(&co, "app/o.yaml"), "o: committed\n");

    for r in [None, Some(RevisionSpec::Head)] {
        let co = s
            .checkout(Some("https://git.example.com/org/plain"), r.as_ref())
            .unwrap();
        assert_eq!(co.revision, Revision::WorkTree);
        assert_eq!(read(&co, "p.yaml"), "p: 1\n");
    }
    let err = s
        .checkout(
            Some("https://git.example.com/org/plain"),
            Some(&rev("branch:main")),
        )
        .unwrap_err();
    assert!(
        matches!(err, SourceError::NotAGitRepository { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("branch:main"), "{err}");
}

#[test]
fn override_to_a_missing_directory_fails_up_front() {
    let f = fixture();
    let err = Sources::new(SourceOptions {
        root_manifest: f.root.join("bootstrap/root.yaml"),
        overrides: vec!["https://h/o/r.git=/nonexistent/kubesync-test"
            .parse()
            .unwrap()],
        cache_dir: None,
        ..Default::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/kubesync-test"),
        "{err}"
    );
}

#[test]
fn remotes_are_cloned_and_fetched_once_per_sources() {
    let f = fixture();
    let url = format!("file://{}", f.root.display());
    let cache = tempfile::tempdir().unwrap();
    // A repo to stand as the root, so `f.root` is only reached as a remote.
    let tmp = tempfile::tempdir().unwrap();
    let here = tmp.path().join("here");
    std::fs::create_dir_all(&here).unwrap();
    git(&here, &["init", "-q"]);
    write(&here.join("bootstrap/root.yaml"), "x: 1\n");
    commit_all(&here, 1_000_000, "here");

    let s = sources_with(&here, vec![], Some(cache.path().to_path_buf()));
    let co = s.checkout(Some(&url), None).unwrap();
    assert_eq!(co.repo, url);
    assert_eq!(sha_of(&co), f.c4, "default branch HEAD, not the work tree");
    assert_eq!(read(&co, "apps/a/x.yaml"), "v: 4\n");
    assert!(co.dir.starts_with(cache.path()));
    let feature = s
        .checkout(Some(&url), Some(&rev("branch:feature")))
        .unwrap();
    assert_eq!(sha_of(&feature), f.c3);
    let latest = s
        .checkout(Some(&url), Some(&RevisionSpec::LatestTag))
        .unwrap();
    assert_eq!(sha_of(&latest), f.c2);
    let tag = s.checkout(Some(&url), Some(&rev("tag:v1.1"))).unwrap();
    assert_eq!(sha_of(&tag), f.c2);

    // An absolute path works too.
    let by_path = s
        .checkout(Some(&f.root.display().to_string()), Some(&rev("tag:v1.0")))
        .unwrap();
    assert_eq!(sha_of(&by_path), f.c1);

    // A new commit upstream: this Sources does not fetch again...
    write(&f.root.join("apps/a/x.yaml"), "v: 5\n");
    let c5 = commit_all(&f.root, 1_000_500, "c5");
    let co = s.checkout(Some(&url), Some(&rev("branch:main"))).unwrap();
    assert_eq!(sha_of(&co), f.c4);
    // ...a new one (same cache) does, and sees branch deletions too.
    git(&f.root, &["branch", "-q", "-D", "feature"]);
    let s2 = sources_with(&here, vec![], Some(cache.path().to_path_buf()));
    let co = s2.checkout(Some(&url), None).unwrap();
    assert_eq!(sha_of(&co), c5);
    assert_eq!(read(&co, "apps/a/x.yaml"), "v: 5\n");
    let err = s2
        .checkout(Some(&url), Some(&rev("branch:feature")))
        .unwrap_err();
    assert!(
        matches!(err, SourceError::RevisionNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(&url), "{err}");
}

#[test]
fn unreachable_remote_fails_fast_without_credentials() {
    let f = fixture();
    let s = sources_for(&f.root);
    let started = Instant::now();
    let url = "https://alice:topsecret@127.0.0.1:1/x.git";
    let err = s.checkout(Some(url), None).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    match &err {
        SourceError::Unreachable { url, .. } => assert_eq!(url, "https://127.0.0.1:1/x.git"),
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(msg.contains("127.0.0.1:1/x.git"), "{msg}");
    assert!(
        !msg.contains("topsecret") && !msg.contains("alice"),
        "{msg}"
    );
    assert!(!format!("{err:?}").contains("topsecret"));

    for url in [
        "http://127.0.0.1:1/x.git",
        "ssh://git:pw@127.0.0.1:1/x.git",
        "git@127.0.0.1:x.git",
    ] {
        let err = s.checkout(Some(url), None).unwrap_err();
        assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("127.0.0.1"), "{msg}");
        assert!(!msg.contains("pw@"), "{msg}");
    }
    let err = s
        .checkout(Some("file:///nonexistent/kubesync/repo.git"), None)
        .unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err:?}");
}

#[test]
fn root_discovery() {
    // Missing manifest.
    let err = Sources::new(SourceOptions {
        root_manifest: PathBuf::from("/nonexistent/kubesync/root.yaml"),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, SourceError::RootNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent/kubesync/root.yaml"),
        "{err}"
    );

    // A manifest deep inside a work tree: the root is the work tree top.
    let f = fixture();
    write(&f.root.join("deep/er/root.yaml"), "x: 1\n");
    let s = Sources::new(SourceOptions {
        root_manifest: f.root.join("deep/er/root.yaml"),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s.root_repo().dir, f.root);

    // A plain directory: the work tree only.
    let tmp = tempfile::tempdir().unwrap();
    write(&tmp.path().join("cfg/root.yaml"), "x: 1\n");
    let s = Sources::new(SourceOptions {
        root_manifest: tmp.path().join("cfg/root.yaml"),
        ..Default::default()
    })
    .unwrap();
    let dir = std::fs::canonicalize(tmp.path().join("cfg")).unwrap();
    assert_eq!(s.root_repo().dir, dir);
    assert!(!s.root_repo().is_git);
    let co = s.checkout(None, None).unwrap();
    assert_eq!(co.dir, dir);
    assert_eq!(co.revision, Revision::WorkTree);
    let err = s.checkout(None, Some(&rev("tag:v1"))).unwrap_err();
    assert!(
        matches!(err, SourceError::NotAGitRepository { .. }),
        "{err:?}"
    );
}

#[test]
fn concurrent_checkouts_share_one_export() {
    let f = fixture();
    let s = std::sync::Arc::new(sources_for(&f.root));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            let spec = if i % 2 == 0 { "tag:v1.1" } else { "v1.1" };
            std::thread::spawn(move || s.checkout(None, Some(&rev(spec))).unwrap())
        })
        .collect();
    let dirs: Vec<PathBuf> = handles
        .into_iter()
        .map(|h| h.join().unwrap().dir.clone())
        .collect();
    assert!(dirs.windows(2).all(|w| w[0] == w[1]), "{dirs:?}");
}

#[test]
fn remote_with_a_dangling_head_falls_back_to_main() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let bare = tmp.path().join("r.git");
    git(
        tmp.path(),
        &["init", "-q", "--bare", bare.to_str().unwrap()],
    );
    git(
        &f.root,
        &["push", "-q", bare.to_str().unwrap(), "main", "feature"],
    );
    git(&bare, &["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let s = sources_for(&f.root);
    let url = format!("file://{}", bare.display());
    let co = s.checkout(Some(&url), None).unwrap();
    assert_eq!(sha_of(&co), f.c4);

    // The same bare repository as an override: no work tree, so HEAD.
    let o = format!("https://h.example/o/r.git={}", bare.display());
    let s = sources_with(&f.root, vec![o.parse().unwrap()], None);
    let co = s.checkout(Some("https://h.example/o/r"), None).unwrap();
    assert_eq!(sha_of(&co), f.c4);
    let co = s
        .checkout(Some("https://h.example/o/r"), Some(&rev("feature")))
        .unwrap();
    assert_eq!(sha_of(&co), f.c3);
}

#[test]
fn submodules_are_skipped_in_exports() {
    let f = fixture();
    git(&f.root, &["checkout", "-q", "--", "apps/a/x.yaml"]);
    git(
        &f.root,
        &[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("160000,{},vendor/sub", f.c1),
        ],
    );
    git_at(
        &f.root,
        Some(1_000_600),
        &["commit", "-q", "-m", "submodule"],
    );
    let s = sources_for(&f.root);
    let co = s.checkout(None, Some(&RevisionSpec::Head)).unwrap();
    assert!(!co.dir.join("vendor/sub").exists());
    assert_eq!(read(&co, "apps/a/x.yaml"), "v: 4\n");
}
