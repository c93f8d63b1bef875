//! The transform renderer: the seeds' `CMD`. A user command reads the app's
//! source from `$INDIR` and writes manifests into `$OUTDIR`, which kubesync
//! then reads like a directory app (recursively; origins `transform:FILE`,
//! relative to OUTDIR).
//!
//! - The command runs **without a shell**: `command[0]` is the program and the
//!   rest its arguments, passed as they are. The only substitutions are
//!   kubesync's own variables, `$INDIR`/`${INDIR}`, `$OUTDIR`/`${OUTDIR}`,
//!   `$KUBESYNC_APP`, `$KUBESYNC_NAMESPACE`, `$KUBESYNC_REVISION`, so the
//!   seeds' `./transform.sh -o $OUTDIR -i $INDIR` works; anything else
//!   (`$HOME`, `*`, `;`, quotes) reaches the program literally. Write
//!   `["sh", "-c", "…"]` to get a shell.
//! - A program containing `/` is relative to the app directory and must stay
//!   inside the repository and be executable; a bare name is looked up on PATH.
//! - It runs with stdin closed, in `INDIR`: a fresh temporary **copy** of the
//!   app directory (symlinks followed, and refused when they lead outside the
//!   repository; `.git` left out), so whatever it writes there reaches
//!   neither the checkout nor the other apps rendered from it. A program
//!   inside the app directory runs from the copy. `OUTDIR` is a fresh empty
//!   temporary directory, and the only place output is read from. Also set:
//!   `KUBESYNC_APP`, `KUBESYNC_NAMESPACE` and `KUBESYNC_REVISION`
//!   (empty when there is no namespace / for a work tree). Its stdout is not
//!   used: it is drained, keeping only a 64 KiB tail. The rest of the
//!   environment is limited to an allow-list (PATH, HOME, USER, LANG, LC_*,
//!   TZ, TMPDIR, proxy and CA settings) plus what the embedder configured, so
//!   kubesync's own credentials never reach user scripts.
//! - After `timeout` the command and its whole process group are killed
//!   ([`RenderError::Timeout`]); a non-zero exit is [`RenderError::Transform`]
//!   with the tail of its stderr.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::directory::{is_manifest_file, walk, Collected, Walk};
use super::process::{self, find_in_path, RunError};
use super::{normalize_lexically, Ctx, RenderError, Rendered, RendererKind};
use crate::model::TransformOptions;

/// How many lines of the command's stderr an error keeps.
const STDERR_LINES: usize = 20;

/// Environment variables passed through from kubesync's own environment.
const ENV_ALLOW: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
];

/// Runs the transform command and reads what it wrote to OUTDIR.
pub(crate) fn render(
    ctx: &Ctx,
    opts: &TransformOptions,
    path_env: Option<&OsStr>,
    extra_env: &[(OsString, OsString)],
) -> Result<Rendered, RenderError> {
    let app = ctx.app_name();
    let shown = opts.command.join(" ");
    let Some(program) = opts.command.first().filter(|p| !p.is_empty()) else {
        return Err(RenderError::BadOption {
            app,
            option: "transform.command".into(),
            message: "must name a program".into(),
        });
    };
    let outdir_tmp = tempfile::Builder::new()
        .prefix("kubesync-out-")
        .tempdir()
        .map_err(|e| ctx.io("(transform OUTDIR)", e))?;
    let outdir = outdir_tmp
        .path()
        .canonicalize()
        .map_err(|e| ctx.io("(transform OUTDIR)", e))?;

    let indir_tmp = tempfile::Builder::new()
        .prefix("kubesync-in-")
        .tempdir()
        .map_err(|e| ctx.io("(transform INDIR)", e))?;
    let indir = indir_tmp
        .path()
        .canonicalize()
        .map_err(|e| ctx.io("(transform INDIR)", e))?;
    copy_app_dir(ctx, &ctx.app_dir, &indir, Path::new(""), &mut Vec::new())?;

    let namespace = ctx.app.destination.namespace.clone().unwrap_or_default();
    let revision = ctx.revision.unwrap_or("").to_string();
    let vars: Vec<(&str, String)> = vec![
        ("INDIR", indir.to_string_lossy().into_owned()),
        ("OUTDIR", outdir.to_string_lossy().into_owned()),
        ("KUBESYNC_APP", app.clone()),
        ("KUBESYNC_NAMESPACE", namespace),
        ("KUBESYNC_REVISION", revision),
    ];
    let program = substitute(program, &vars);
    let search_path: OsString = path_env
        .map(OsStr::to_os_string)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let resolved = resolve_program(ctx, &program, &search_path)?;
    // A program of the app's own runs from the copy, like everything it reads.
    let run_path = match resolved.strip_prefix(&ctx.app_dir) {
        Ok(rel) => indir.join(rel),
        Err(_) => resolved.clone(),
    };

    let mut cmd = Command::new(&run_path);
    cmd.args(opts.command.iter().skip(1).map(|a| substitute(a, &vars)))
        .current_dir(&indir)
        .env_clear()
        .env("PATH", &search_path);
    for (k, v) in std::env::vars_os() {
        let key = k.to_string_lossy();
        if ENV_ALLOW.contains(&key.as_ref()) || key.starts_with("LC_") {
            cmd.env(&k, &v);
        }
    }
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    for (k, v) in &vars {
        cmd.env(k, v);
    }
    tracing::debug!(command = %shown, "running transform");
    // Its stdout is not read as output: drained, only its tail kept.
    let out = process::run(cmd, opts.timeout, process::Stdout::Tail).map_err(|e| match e {
        RunError::TimedOut => RenderError::Timeout {
            app: app.clone(),
            command: shown.clone(),
            after: opts.timeout,
        },
        RunError::Spawn(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            RenderError::NotExecutable {
                app: app.clone(),
                path: ctx.label_abs(&resolved),
            }
        }
        RunError::Spawn(e) => RenderError::Transform {
            app: app.clone(),
            command: shown.clone(),
            status: format!("could not be started: {e}"),
            stderr: String::new(),
        },
        RunError::Wait(e) => RenderError::Transform {
            app: app.clone(),
            command: shown.clone(),
            status: format!("could not be waited for: {e}"),
            stderr: String::new(),
        },
    })?;
    if !out.status.success() {
        return Err(RenderError::Transform {
            app,
            command: shown,
            status: process::status_text(out.status),
            stderr: process::tail_lines(&out.stderr, STDERR_LINES),
        });
    }

    let label = |rel: &Path| PathBuf::from(format!("transform:{}", rel.display()));
    let files = walk(
        &Walk {
            app: &app,
            root: &outdir,
            recurse: true,
            hidden: false,
            allowed: &[&outdir, &indir, &ctx.repo_root],
            label: &label,
        },
        &|rel| is_manifest_file(rel),
    )?;
    let mut collected = Collected::default();
    for f in &files {
        collected.file(&app, &label(&f.rel), &f.path)?;
    }
    if files.is_empty() && !out.stdout.iter().all(u8::is_ascii_whitespace) {
        collected.warnings.push(format!(
            "transform command `{shown}` wrote no .yaml, .yml or .json files to $OUTDIR but printed {} bytes on stdout; kubesync reads only $OUTDIR",
            out.stdout_len
        ));
    }
    drop(outdir_tmp);
    drop(indir_tmp);
    Ok(collected.into_rendered(RendererKind::Transform))
}

/// Copies directory `src` (canonical) into `dst`, following symlinks that
/// stay inside the repository and refusing the others; `rel` is `src`
/// relative to the app directory, `open` the directories being copied (a
/// symlink loop is copied once).
fn copy_app_dir(
    ctx: &Ctx,
    src: &Path,
    dst: &Path,
    rel: &Path,
    open: &mut Vec<PathBuf>,
) -> Result<(), RenderError> {
    let io = |rel: &Path, e: std::io::Error| ctx.io(ctx.label_in_app(rel), e);
    open.push(src.to_path_buf());
    let entries = std::fs::read_dir(src).map_err(|e| io(rel, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io(rel, e))?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let path = entry.path();
        let rel = rel.join(&name);
        let meta = std::fs::symlink_metadata(&path).map_err(|e| io(&rel, e))?;
        let real = if meta.file_type().is_symlink() {
            let Ok(target) = path.canonicalize() else {
                // A broken link: nothing to copy.
                continue;
            };
            if !target.starts_with(&ctx.repo_root) {
                return Err(ctx.escapes(ctx.label_in_app(&rel)));
            }
            target
        } else {
            path
        };
        let to = dst.join(&name);
        if real.is_dir() {
            if open.contains(&real) {
                continue;
            }
            std::fs::create_dir(&to).map_err(|e| io(&rel, e))?;
            copy_app_dir(ctx, &real, &to, &rel, open)?;
        } else if real.is_file() {
            std::fs::copy(&real, &to).map_err(|e| io(&rel, e))?;
        }
    }
    open.pop();
    Ok(())
}

/// Replaces `$NAME` and `${NAME}` for kubesync's own variables only.
fn substitute(arg: &str, vars: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    'outer: while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        for (name, value) in vars {
            let braced = format!("{{{name}}}");
            if let Some(tail) = after.strip_prefix(braced.as_str()) {
                out.push_str(value);
                rest = tail;
                continue 'outer;
            }
            if let Some(tail) = after.strip_prefix(name) {
                let boundary = !tail
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
                if boundary {
                    out.push_str(value);
                    rest = tail;
                    continue 'outer;
                }
            }
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Finds the program: relative to the app directory when it has a `/`
/// (confined to the repository, must be executable), else on the search path.
fn resolve_program(ctx: &Ctx, program: &str, search_path: &OsStr) -> Result<PathBuf, RenderError> {
    let app = ctx.app_name();
    if !program.contains('/') {
        return find_in_path(OsStr::new(program), search_path).ok_or_else(|| {
            RenderError::MissingBinary {
                app,
                binary: program.to_string(),
                hint: "the transform program is not on PATH (a program in the repository is written with a path, e.g. ./transform.sh)".into(),
            }
        });
    }
    let joined = ctx.app_dir.join(program);
    let label = ctx.label_in_app(Path::new(program));
    let path = if Path::new(program).is_absolute() {
        joined
    } else {
        let norm = normalize_lexically(&joined)
            .filter(|p| p.starts_with(&ctx.repo_root))
            .ok_or_else(|| ctx.escapes(&label))?;
        match norm.canonicalize() {
            Ok(real) if real.starts_with(&ctx.repo_root) => real,
            Ok(_) => return Err(ctx.escapes(&label)),
            Err(_) => {
                return Err(RenderError::MissingBinary {
                    app,
                    binary: program.to_string(),
                    hint: format!(
                        "{} does not exist in the repository",
                        ctx.label_abs(&norm).display()
                    ),
                })
            }
        }
    };
    if !path.is_file() {
        return Err(RenderError::MissingBinary {
            app,
            binary: program.to_string(),
            hint: format!("{} is not a file", ctx.label_abs(&path).display()),
        });
    }
    if !process::is_executable(&path) {
        return Err(RenderError::NotExecutable {
            app,
            path: ctx.label_abs(&path),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_kubesync_variables_are_substituted() {
        let vars = vec![("INDIR", "/in".to_string()), ("OUTDIR", "/out".to_string())];
        assert_eq!(substitute("-o $OUTDIR", &vars), "-o /out");
        assert_eq!(substitute("${INDIR}/x", &vars), "/in/x");
        assert_eq!(substitute("$INDIRX", &vars), "$INDIRX");
        assert_eq!(substitute("$HOME $(id) `x` *", &vars), "$HOME $(id) `x` *");
        assert_eq!(substitute("a$", &vars), "a$");
        assert_eq!(substitute("$$OUTDIR", &vars), "$/out");
    }
}
