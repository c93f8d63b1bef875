//! The status page's HTML: pure functions from the view model to a string.
//! Every value that came from git or the cluster goes through [`escape`]
//! (text and attributes) or [`path_segment`] (links); states are shown in
//! colour *and* words, so the page reads the same without colour.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::{AppPageView, AppRow, ObjectRow, Outcome, PageView, RunView, REFRESH_SECONDS};
use crate::diff::SyncStatus;
use crate::health::Health;

/// Escapes text for HTML content and double-quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes an app name for use as one URL path segment.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A link to `sha` built from kube-applier's `DIFF_URL_FORMAT` (`%s` is the
/// sha), or the short sha alone. Only http(s) links are made.
pub fn commit_link(sha: &str, format: Option<&str>) -> String {
    let short = escape(&sha.chars().take(12).collect::<String>());
    match format {
        Some(f) if f.contains("%s") && (f.starts_with("https://") || f.starts_with("http://")) => {
            let url = f.replace("%s", sha);
            format!(
                "<a class=\"commit\" href=\"{}\"><code>{short}</code></a>",
                escape(&url)
            )
        }
        _ => format!("<code class=\"commit\">{short}</code>"),
    }
}

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1d2329;background:#fafbfc}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.4rem 0 .5rem}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border-bottom:1px solid #e3e6ea;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#f0f2f4;font-weight:600}
.badge{display:inline-block;padding:0 .45rem;border-radius:.6rem;font-weight:600;font-size:.85em;white-space:nowrap}
.ok{background:#d8f3dc;color:#1b5e20}.warn{background:#fff3cd;color:#7a5200}
.bad{background:#fde2e1;color:#9b1c1c}.info{background:#e2ecfb;color:#1d4ed8}.none{background:#eceff1;color:#455a64}
.err{color:#9b1c1c;white-space:pre-wrap}.muted{color:#6b7280}
form{display:inline}button{font:inherit;padding:.25rem .8rem;cursor:pointer}
pre.diff{background:#fff;border:1px solid #e3e6ea;padding:.6rem;overflow:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
";

fn head(title: &str, refresh: bool) -> String {
    let refresh = if refresh {
        format!("<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">")
    } else {
        String::new()
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">{refresh}\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(title)
    )
}

const TAIL: &str = "</body></html>\n";

fn badge(class: &str, word: &str) -> String {
    format!("<span class=\"badge {class}\">{}</span>", escape(word))
}

pub fn sync_badge(sync: Option<SyncStatus>) -> String {
    match sync {
        Some(SyncStatus::Synced) => badge("ok", "Synced"),
        Some(SyncStatus::OutOfSync) => badge("warn", "OutOfSync"),
        None => badge("none", "Unknown"),
    }
}

pub fn health_badge(health: Option<Health>) -> String {
    match health {
        Some(h @ Health::Healthy) => badge("ok", h.as_str()),
        Some(h @ (Health::Progressing | Health::Suspended)) => badge("info", h.as_str()),
        Some(h @ (Health::Degraded | Health::Missing)) => badge("bad", h.as_str()),
        Some(h) => badge("none", h.as_str()),
        None => badge("none", "Unknown"),
    }
}

fn outcome_badge(o: Outcome) -> String {
    let class = match o {
        Outcome::Succeeded => "ok",
        Outcome::Failed => "bad",
        Outcome::Blocked => "warn",
        Outcome::Running => "info",
        Outcome::Pending => "none",
    };
    badge(class, o.as_str())
}

fn time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => format!(
            "<time datetime=\"{}\">{}</time>",
            t.to_rfc3339(),
            t.format("%Y-%m-%d %H:%M:%S UTC")
        ),
        None => "<span class=\"muted\">–</span>".into(),
    }
}

fn duration(start: Option<DateTime<Utc>>, end: Option<DateTime<Utc>>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => {
            let ms = (e - s).num_milliseconds().max(0);
            if ms < 10_000 {
                format!("{:.2} s", ms as f64 / 1000.0)
            } else {
                format!("{} s", ms / 1000)
            }
        }
        (Some(_), None) => "running".into(),
        _ => "–".into(),
    }
}

fn revision(rev: Option<&str>, format: Option<&str>) -> String {
    match rev {
        Some(r) if !r.is_empty() => commit_link(r, format),
        _ => "<span class=\"muted\">–</span>".into(),
    }
}

fn csrf_form(action: &str, csrf: &str, label: &str, id: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" id=\"{}\">{}</button></form>",
        escape(action),
        escape(csrf),
        escape(id),
        escape(label)
    )
}

fn names(list: &[String]) -> String {
    if list.is_empty() {
        return "<span class=\"muted\">–</span>".into();
    }
    list.iter()
        .map(|n| format!("<a href=\"/apps/{}\">{}</a>", path_segment(n), escape(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn last_run(run: Option<&RunView>, format: Option<&str>) -> String {
    let Some(r) = run else {
        return "<p id=\"last-run\" class=\"muted\">No run yet.</p>".into();
    };
    let mut s = String::from("<dl id=\"last-run\">");
    let _ = write!(
        s,
        "<dt>Type</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd>\
         <dt>Latency</dt><dd>{}</dd><dt>Commit</dt><dd>{}</dd>\
         <dt>Apps synced</dt><dd>{}</dd><dt>Objects applied</dt><dd>{}</dd><dt>Result</dt><dd>{}</dd>",
        r.kind.as_str(),
        time(Some(r.started)),
        time(r.finished),
        duration(Some(r.started), r.finished),
        revision(r.commit.as_deref(), format),
        r.apps_synced,
        r.objects_applied,
        match (r.finished, r.errors.is_empty()) {
            (None, _) => badge("info", "Running"),
            (Some(_), true) => badge("ok", "Succeeded"),
            (Some(_), false) => badge("bad", &format!("{} error(s)", r.errors.len())),
        }
    );
    s.push_str("</dl>");
    if !r.errors.is_empty() {
        s.push_str("<ul id=\"run-errors\">");
        for e in &r.errors {
            let _ = write!(s, "<li class=\"err\">{}</li>", escape(e));
        }
        s.push_str("</ul>");
    }
    s
}

fn app_row(a: &AppRow, format: Option<&str>, csrf: &str) -> String {
    let seg = path_segment(&a.name);
    let error = match &a.error {
        Some(e) => format!("<span class=\"err\">{}</span>", escape(e)),
        None => String::new(),
    };
    format!(
        "<tr data-app=\"{name}\"><td><a href=\"/apps/{seg}\">{name}</a></td><td>{tier}</td><td>{ns}</td>\
         <td class=\"sync\">{sync}</td><td class=\"health\">{health}</td><td class=\"outcome\">{outcome}</td>\
         <td>{applied}</td><td>{deployed}</td><td>{finished}<br><span class=\"muted\">{took}</span></td>\
         <td>{c}/{u}/{p}</td><td>{deps}</td><td>{blocked}</td><td>{error}</td><td>{button}</td></tr>",
        name = escape(&a.name),
        tier = escape(&a.tier),
        ns = escape(a.namespace.as_deref().unwrap_or("–")),
        sync = sync_badge(a.sync),
        health = health_badge(a.health),
        outcome = outcome_badge(a.outcome),
        applied = revision(a.applied_revision.as_deref(), format),
        deployed = revision(a.deployed_revision.as_deref(), format),
        finished = time(a.last_finished),
        took = duration(a.last_started, a.last_finished),
        c = a.created,
        u = a.configured,
        p = a.pruned,
        deps = names(&a.depends_on),
        blocked = names(&a.blocked_by),
        button = csrf_form(
            &format!("/ui/apps/{seg}/sync"),
            csrf,
            "Sync",
            &format!("sync-{}", a.name)
        ),
    )
}

/// The index page: the last run, a "Run now" button and one row per app.
pub fn index(v: &PageView, csrf: &str) -> String {
    let format = v.diff_url_format.as_deref();
    let mut s = head("kubesync", true);
    let synced = v
        .apps
        .iter()
        .filter(|a| a.sync == Some(SyncStatus::Synced) && a.health == Some(Health::Healthy))
        .count();
    let _ = write!(
        s,
        "<h1>kubesync</h1><p class=\"muted\">{} · {} <span id=\"summary\">{synced} of {} apps Synced and Healthy</span> · runs: <span id=\"run-counter\">{}</span>{}</p>",
        escape(&v.source),
        if v.leader {
            badge("ok", "leader")
        } else {
            badge("none", "standby")
        },
        v.apps.len(),
        v.runs,
        if v.queued { " · a run is queued" } else { "" },
    );
    s.push_str(&csrf_form("/ui/run", csrf, "Run now", "run-now"));
    s.push_str("<h2>Last run</h2>");
    s.push_str(&last_run(v.last_run.as_ref(), format));
    s.push_str(
        "<h2>Applications</h2><table id=\"apps\"><thead><tr><th>App</th><th>Tier</th><th>Namespace</th>\
         <th>Sync</th><th>Health</th><th>Last sync</th><th>Applied</th><th>Deployed</th><th>Finished</th>\
         <th title=\"created / configured / pruned\">Objects c/u/p</th><th>Depends on</th><th>Blocked by</th>\
         <th>Error</th><th></th></tr></thead><tbody>",
    );
    for a in &v.apps {
        s.push_str(&app_row(a, format, csrf));
    }
    s.push_str("</tbody></table>");
    s.push_str(TAIL);
    s
}

fn object_row(o: &ObjectRow) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        escape(&o.kind),
        escape(o.namespace.as_deref().unwrap_or("–")),
        escape(&o.name),
        sync_badge(o.sync),
        health_badge(o.health),
        escape(&o.message)
    )
}

/// An app's page: its state, objects and the current diff.
pub fn app(v: &AppPageView, csrf: &str) -> String {
    let a = &v.app;
    let format = v.diff_url_format.as_deref();
    let mut s = head(&format!("{} · kubesync", a.name), true);
    let _ = write!(
        s,
        "<p><a href=\"/\">← all apps</a></p><h1>{}</h1><dl id=\"app\">\
         <dt>Tier</dt><dd>{}</dd><dt>Namespace</dt><dd>{}</dd><dt>Sync</dt><dd>{}</dd>\
         <dt>Health</dt><dd>{}</dd><dt>Last sync</dt><dd>{}</dd><dt>Applied revision</dt><dd>{}</dd>\
         <dt>Deployed revision</dt><dd>{}</dd><dt>Started</dt><dd>{}</dd><dt>Finished</dt><dd>{}</dd>\
         <dt>Objects</dt><dd>{} created, {} configured, {} pruned</dd>\
         <dt>Depends on</dt><dd>{}</dd><dt>Blocked by</dt><dd>{}</dd></dl>",
        escape(&a.name),
        escape(&a.tier),
        escape(a.namespace.as_deref().unwrap_or("–")),
        sync_badge(a.sync),
        health_badge(a.health),
        outcome_badge(a.outcome),
        revision(a.applied_revision.as_deref(), format),
        revision(a.deployed_revision.as_deref(), format),
        time(a.last_started),
        time(a.last_finished),
        a.created,
        a.configured,
        a.pruned,
        names(&a.depends_on),
        names(&a.blocked_by),
    );
    if let Some(e) = &a.error {
        let _ = write!(s, "<p class=\"err\" id=\"error\">{}</p>", escape(e));
    }
    s.push_str(&csrf_form(
        &format!("/ui/apps/{}/sync", path_segment(&a.name)),
        csrf,
        "Sync",
        "sync",
    ));
    s.push_str(
        "<h2>Objects</h2><table id=\"objects\"><thead><tr><th>Kind</th><th>Namespace</th><th>Name</th>\
         <th>Sync</th><th>Health</th><th>Message</th></tr></thead><tbody>",
    );
    for o in &v.objects {
        s.push_str(&object_row(o));
    }
    s.push_str("</tbody></table><h2>Diff</h2>");
    match &v.diff {
        Some(d) if !d.trim().is_empty() => {
            let _ = write!(s, "<pre class=\"diff\" id=\"diff\">{}</pre>", escape(d));
        }
        Some(_) => {
            s.push_str("<p id=\"diff\" class=\"muted\">No difference: live matches git.</p>")
        }
        None => s.push_str("<p id=\"diff\" class=\"muted\">Not computed yet.</p>"),
    }
    s.push_str(TAIL);
    s
}

/// A page for an unknown app.
pub fn not_found(name: &str) -> String {
    message(
        "Not found",
        &format!("There is no application named \"{name}\" in the tree."),
    )
}

/// A short page with a title and one paragraph (refusals, errors).
pub fn message(title: &str, text: &str) -> String {
    format!(
        "{}<p><a href=\"/\">← all apps</a></p><h1>{}</h1><p>{}</p>{TAIL}",
        head(title, false),
        escape(title),
        escape(text)
    )
}
