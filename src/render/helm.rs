//! The helm renderer: `helm template RELEASE CHART --namespace NS
//! [--include-crds] [-f FILE]... [--set|--set-string NAME=VALUE]...` on the
//! app directory (the chart), run without a shell through [`super::process`].
//!
//! - RELEASE is `helm.releaseName` or the app name; NS the destination
//!   namespace or `default`.
//! - Value files are relative to the chart directory (a leading `/` means the
//!   repository root, as in Argo CD) and must stay inside the repository; an
//!   absolute path not found in the repository is reported as an absolute
//!   path (a path on the machine is never read);
//!   `http(s)://` value files are passed to helm as they are. A missing value
//!   file is an error unless `ignoreMissingValueFiles` (then a warning).
//! - Inline `values` are written to a temporary file passed last, so they win
//!   over the value files; `--set` parameters win over both (helm's own
//!   precedence). Commas in parameter values are escaped, as Argo CD does.
//! - Objects' origins come from helm's `# Source: CHART/templates/x.yaml`
//!   comments, mapped to the chart's path in the repository
//!   (`charts/x/templates/x.yaml`); the document index counts per source file.
//! - A non-zero exit is a [`RenderError::Helm`] carrying helm's stderr as it
//!   is (trimmed); anything helm prints on stderr on success becomes a warning.
//!
//! - Every file of the chart (hidden ones too, as helm loads them) must stay
//!   inside the repository: a symlink leading outside it is an error naming
//!   the file, checked before helm runs, so `.Files.Get` cannot read what the
//!   repository does not hold. Value files are held to the same rule.
//!
//! Chart dependencies missing from `charts/` are fetched before this runs
//! (`chart::deps`, by the tree): helm then renders a temporary copy of the
//! chart ([`super::RenderInput::chart_dir`]). A value file `$NAME/path`
//! reads the multi-source `ref` source NAME.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::directory::{walk, Collected, Walk};
use super::process::{self, RunError};
use super::{normalize_lexically, Ctx, RenderError, Rendered, RendererKind};
use crate::model::{yaml, HelmOptions, HelmParameter};

/// Renders the chart in the app directory with `helm`.
pub(crate) fn render(
    ctx: &Ctx,
    opts: &HelmOptions,
    helm: &Path,
    path_env: Option<&OsStr>,
    timeout: Duration,
) -> Result<Rendered, RenderError> {
    let app = ctx.app_name();
    let chart_label = ctx.app_label();
    let mut warnings = Vec::new();
    check_chart_files(ctx)?;

    // A prepared copy (dependencies filled in) renders instead of the
    // repository's own directory, which is never written.
    let chart_dir = ctx.chart_dir.as_deref().unwrap_or(&ctx.app_dir);
    let mut args: Vec<String> = vec![
        "template".into(),
        ctx.app.helm_release_name().to_string(),
        chart_dir.to_string_lossy().into_owned(),
        "--namespace".into(),
        ctx.app
            .destination
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    ];
    if !opts.skip_crds {
        args.push("--include-crds".into());
    }
    for vf in &opts.value_files {
        if vf.starts_with("http://") || vf.starts_with("https://") {
            args.push("-f".into());
            args.push(vf.clone());
            continue;
        }
        match resolve_value_file(ctx, vf)? {
            Some(path) => {
                args.push("-f".into());
                args.push(path.to_string_lossy().into_owned());
            }
            None if opts.ignore_missing_value_files => warnings.push(format!(
                "value file {vf} of chart {} not found; ignored (ignoreMissingValueFiles)",
                chart_label.display()
            )),
            None if vf.starts_with('/') => {
                return Err(RenderError::AbsoluteValueFile {
                    app,
                    chart: chart_label,
                    file: vf.clone(),
                })
            }
            None => {
                return Err(RenderError::MissingValueFile {
                    app,
                    chart: chart_label,
                    file: vf.clone(),
                })
            }
        }
    }
    // Kept alive until helm has run.
    let inline = match &opts.values {
        Some(v) if !is_empty_values(v) => Some(write_values(ctx, v)?),
        _ => None,
    };
    if let Some(f) = &inline {
        args.push("-f".into());
        args.push(f.path().to_string_lossy().into_owned());
    }
    args.extend(set_args(&opts.parameters));

    let mut cmd = Command::new(helm);
    cmd.args(&args).current_dir(chart_dir);
    if let Some(p) = path_env {
        cmd.env("PATH", p);
    }
    tracing::debug!(helm = %helm.display(), chart = %chart_label.display(), "helm template");
    let out = process::run(cmd, timeout, process::Stdout::Keep(process::STDOUT_CAP)).map_err(
        |e| match e {
            RunError::Spawn(e) if e.kind() == std::io::ErrorKind::NotFound => {
                RenderError::MissingBinary {
                    app: app.clone(),
                    binary: "helm".into(),
                    hint: format!("{} could not be started: {e}", helm.display()),
                }
            }
            RunError::Spawn(e) | RunError::Wait(e) => RenderError::Io {
                app: app.clone(),
                path: helm.to_path_buf(),
                source: e,
            },
            RunError::TimedOut => RenderError::Timeout {
                app: app.clone(),
                command: format!("helm template {}", chart_label.display()),
                after: timeout,
            },
        },
    )?;
    if out.stdout_overflowed() {
        return Err(RenderError::OutputTooLarge {
            app,
            command: format!("helm template {}", chart_label.display()),
            limit: process::STDOUT_CAP,
        });
    }
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(RenderError::Helm {
            app,
            chart: chart_label,
            stderr: if stderr.is_empty() {
                format!(
                    "helm {} with no output on stderr",
                    process::status_text(out.status)
                )
            } else {
                stderr
            },
        });
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        warnings.push(format!("helm: {line}"));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut collected = parse_output(&app, &ctx.app_rel, &chart_label, &stdout)?;
    warnings.append(&mut collected.warnings);
    collected.warnings = warnings;
    Ok(collected.into_rendered(RendererKind::Helm))
}

/// Refuses a chart holding a symlink (file or directory, hidden or not) that
/// leads outside the repository.
fn check_chart_files(ctx: &Ctx) -> Result<(), RenderError> {
    let app = ctx.app_name();
    walk(
        &Walk {
            app: &app,
            root: &ctx.app_dir,
            recurse: true,
            hidden: true,
            allowed: &[&ctx.repo_root],
            label: &|rel| ctx.label_in_app(rel),
        },
        &|_| true,
    )?;
    Ok(())
}

/// Resolves a value file: `Some(canonical path)`, or `None` if it does not exist.
fn resolve_value_file(ctx: &Ctx, vf: &str) -> Result<Option<PathBuf>, RenderError> {
    // `$NAME/path`: a file of the multi-source `ref` source NAME.
    if let Some(rest) = vf.strip_prefix('$') {
        let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
        let label = PathBuf::from(vf);
        let Some((_, root)) = ctx.refs.iter().find(|(n, _)| n == name) else {
            return Err(RenderError::BadOption {
                app: ctx.app_name(),
                option: "helm.valueFiles".into(),
                message: format!("\"{vf}\" names ref \"{name}\", which no source of the app has"),
            });
        };
        let norm = normalize_lexically(&root.join(path))
            .filter(|p| p.starts_with(root))
            .ok_or_else(|| ctx.escapes(&label))?;
        return match norm.canonicalize() {
            Ok(real) if real.starts_with(root) => Ok(Some(real)),
            Ok(_) => Err(ctx.escapes(&label)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ctx.io(label, e)),
        };
    }
    let label = ctx.app_label().join(vf);
    let joined = match vf.strip_prefix('/') {
        Some(rest) => ctx.repo_root.join(rest),
        None => ctx.app_dir.join(vf),
    };
    let norm = normalize_lexically(&joined)
        .filter(|p| p.starts_with(&ctx.repo_root))
        .ok_or_else(|| ctx.escapes(&label))?;
    match norm.canonicalize() {
        Ok(real) if real.starts_with(&ctx.repo_root) => Ok(Some(real)),
        Ok(_) => Err(ctx.escapes(&label)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ctx.io(label, e)),
    }
}

fn is_empty_values(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.trim().is_empty(),
        _ => false,
    }
}

/// Writes inline values to a temporary file (JSON is YAML, and unambiguous).
fn write_values(ctx: &Ctx, v: &Value) -> Result<tempfile::NamedTempFile, RenderError> {
    let text = match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).map_err(|e| ctx.io("values", e.into()))?,
    };
    let mut f = tempfile::Builder::new()
        .prefix("kubesync-values-")
        .suffix(".yaml")
        .tempfile()
        .map_err(|e| ctx.io("(temporary values file)", e))?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.flush())
        .map_err(|e| ctx.io("(temporary values file)", e))?;
    Ok(f)
}

/// `--set name=value` / `--set-string name=value`, commas escaped.
fn set_args(params: &[HelmParameter]) -> Vec<String> {
    let mut out = Vec::new();
    for p in params {
        out.push(
            if p.force_string {
                "--set-string"
            } else {
                "--set"
            }
            .to_string(),
        );
        out.push(format!("{}={}", p.name, escape_commas(&p.value)));
    }
    out
}

/// Escapes commas not already escaped (helm's `--set` splits on them).
fn escape_commas(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut prev_backslash = false;
    for c in v.chars() {
        if c == ',' && !prev_backslash {
            out.push('\\');
        }
        prev_backslash = c == '\\' && !prev_backslash;
        out.push(c);
    }
    out
}

/// Splits helm's output into documents, each with its `# Source:` path.
fn split_output(text: &str) -> Vec<(Option<String>, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut flush = |current: &mut String| {
        let source = current.lines().find_map(|l| {
            l.strip_prefix("# Source: ")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        });
        if !current.trim().is_empty() {
            docs.push((source, std::mem::take(current)));
        }
        current.clear();
    };
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            flush(&mut current);
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    flush(&mut current);
    docs
}

/// `mychart/templates/x.yaml` → `<chart dir in repo>/templates/x.yaml`.
fn source_label(chart_rel: &Path, source: &str) -> PathBuf {
    match source.split_once('/') {
        Some((_chart_name, rest)) => chart_rel.join(rest),
        None => chart_rel.join(source),
    }
}

/// Parses `helm template` output into manifests with origins.
fn parse_output(
    app: &str,
    chart_rel: &Path,
    chart_label: &Path,
    text: &str,
) -> Result<Collected, RenderError> {
    let mut out = Collected::default();
    let mut per_file: std::collections::HashMap<PathBuf, usize> = Default::default();
    for (source, chunk) in split_output(text) {
        let label = match &source {
            Some(s) => source_label(chart_rel, s),
            None => chart_label.to_path_buf(),
        };
        let docs = yaml::documents(&chunk).map_err(|e| {
            let doc = *per_file.get(&label).unwrap_or(&0);
            RenderError::from_yaml(app, &label, doc, e, " (in helm's output)")
        })?;
        for (_, value) in docs {
            let n = per_file.entry(label.clone()).or_insert(0);
            let doc = *n;
            *n += 1;
            out.document(app, &label, doc, value)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_escaped_once() {
        assert_eq!(escape_commas("a,b"), "a\\,b");
        assert_eq!(escape_commas("a\\,b"), "a\\,b");
        assert_eq!(escape_commas("a\\\\,b"), "a\\\\\\,b");
        let args = set_args(&[
            HelmParameter {
                name: "image.tag".into(),
                value: "1.2".into(),
                force_string: false,
            },
            HelmParameter {
                name: "x".into(),
                value: "1,2".into(),
                force_string: true,
            },
        ]);
        assert_eq!(
            args,
            vec!["--set", "image.tag=1.2", "--set-string", "x=1\\,2"]
        );
    }

    #[test]
    fn output_documents_carry_their_source() {
        let text = "---\n# Source: web/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\n# Source: web/templates/cms.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n# Source: web/templates/cms.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n---\n# Source: web/charts/db/templates/empty.yaml\n# nothing\n";
        let c = parse_output(
            "web",
            Path::new("charts/web"),
            Path::new("charts/web"),
            text,
        )
        .unwrap();
        let origins: Vec<String> = c.manifests.iter().map(|m| m.origin.to_string()).collect();
        assert_eq!(
            origins,
            vec![
                "charts/web/templates/svc.yaml",
                "charts/web/templates/cms.yaml",
                "charts/web/templates/cms.yaml (document 2)",
            ]
        );
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn bad_output_names_the_template() {
        let text = "---\n# Source: web/templates/bad.yaml\nkey: [1\n";
        let e = parse_output(
            "web",
            Path::new("charts/web"),
            Path::new("charts/web"),
            text,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "application \"web\": charts/web/templates/bad.yaml: document 1: invalid YAML"
            ),
            "{e}"
        );
    }
}
