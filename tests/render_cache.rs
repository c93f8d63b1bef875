//! The render cache: identical committed inputs render once per process;
//! work-tree renders and changed inputs render again. Runs are counted by a
//! transform script that appends to a counter file.

mod render_support;

use std::path::Path;
use std::sync::Arc;

use kubesync::render::Renderer;
use render_support::{app_with, names, render, Repo};

const SHA1: &str = "1111111111111111111111111111111111111111";
const SHA2: &str = "2222222222222222222222222222222222222222";

fn counting_repo(counter: &Path) -> (Repo, kubesync::model::Application) {
    let repo = Repo::new();
    repo.script(
        "apps/gen/count.sh",
        "#!/bin/sh\necho run >> \"$1\"\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: counted\\n' > \"$OUTDIR/cm.yaml\"\n",
    );
    let app = app_with(
        "gen",
        Some("shop"),
        &format!(
            "{{path: apps/gen, transform: {{command: [./count.sh, '{}']}}}}",
            counter.display()
        ),
    );
    (repo, app)
}

fn runs(counter: &Path) -> usize {
    std::fs::read_to_string(counter)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn identical_committed_inputs_render_once() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("runs");
    let (repo, app) = counting_repo(&counter);
    let renderer = Renderer::new();

    let first = render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    let second = render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), 1);
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(names(&second), vec!["ConfigMap/counted"]);

    // Another revision, another namespace, another spec: rendered again.
    render(&renderer, &repo, &app, Some(SHA2)).unwrap();
    assert_eq!(runs(&counter), 2);
    let mut moved = app.clone();
    moved.destination.namespace = Some("other".into());
    render(&renderer, &repo, &moved, Some(SHA2)).unwrap();
    assert_eq!(runs(&counter), 3);
    let mut slower = app.clone();
    if let kubesync::model::RendererSpec::Transform(t) = &mut slower.source.renderer {
        t.timeout *= 2;
    }
    render(&renderer, &repo, &slower, Some(SHA2)).unwrap();
    assert_eq!(runs(&counter), 4);

    // Still cached.
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), 4);

    renderer.clear_cache();
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), 5);
}

#[test]
fn work_tree_renders_are_never_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("runs");
    let (repo, app) = counting_repo(&counter);
    let renderer = Renderer::new();
    render(&renderer, &repo, &app, None).unwrap();
    render(&renderer, &repo, &app, None).unwrap();
    assert_eq!(runs(&counter), 2);
}

#[test]
fn a_disabled_cache_renders_every_time() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("runs");
    let (repo, app) = counting_repo(&counter);
    let renderer = Renderer::new().with_cache_capacity(0);
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), 2);
}

#[test]
fn capacity_evicts_the_oldest() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("runs");
    let (repo, app) = counting_repo(&counter);
    let renderer = Renderer::new().with_cache_capacity(1);
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    render(&renderer, &repo, &app, Some(SHA2)).unwrap();
    render(&renderer, &repo, &app, Some(SHA2)).unwrap();
    assert_eq!(runs(&counter), 2);
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), 3);
}

#[test]
fn failures_are_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("runs");
    let (repo, app) = counting_repo(&counter);
    std::fs::remove_file(repo.path("apps/gen/count.sh")).unwrap();
    let renderer = Renderer::new();
    assert!(render(&renderer, &repo, &app, Some(SHA1)).is_err());
    let (fixed, _) = counting_repo(&counter);
    std::fs::rename(
        fixed.path("apps/gen/count.sh"),
        repo.path("apps/gen/count.sh"),
    )
    .unwrap();
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), 1);
}

#[test]
fn shared_across_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let counter = tmp.path().join("runs");
    let (repo, app) = counting_repo(&counter);
    let renderer = Arc::new(Renderer::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let r = render(&renderer, &repo, &app, Some(SHA1)).unwrap();
                assert_eq!(names(&r), vec!["ConfigMap/counted"]);
            });
        }
    });
    // Concurrent identical renders may each run; later ones hit the cache.
    let before = runs(&counter);
    assert!((1..=4).contains(&before), "{before}");
    render(&renderer, &repo, &app, Some(SHA1)).unwrap();
    assert_eq!(runs(&counter), before);
}
