//! Argo CD's `AppProject`: read from the tree (never applied as an object),
//! its rules become guardrails for the Argo CD Applications that name it.
//!
//! What a project decides, as Argo CD decides it:
//! - `sourceRepos`: glob patterns an app's repository URL must match (`*`
//!   for any; a leading `!` denies);
//! - `destinations`: `{namespace, server, name}` globs the app's destination
//!   must match (kubesync syncs the cluster it is connected to, so `server`
//!   and `name` are matched only when the app names them);
//! - `clusterResourceWhitelist` / `clusterResourceBlacklist`: which
//!   cluster-scoped `{group, kind}` the app may write (no whitelist: none);
//! - `namespaceResourceWhitelist` / `namespaceResourceBlacklist`: which
//!   namespaced kinds (no whitelist: all).
//!
//! Pure: parsing and matching only; `tree` resolves projects and `sync`
//! applies the resource rules.

use globset::{Glob, GlobMatcher};
use serde_json::Value;

use super::{type_name, ModelError, ObjectOrigin};

/// Argo CD's API version for AppProject.
const ARGOCD_API_VERSION: &str = "argoproj.io/v1alpha1";

/// The project every Argo CD Application may name without defining it: it
/// allows everything (unless the tree defines an AppProject `default`).
pub const DEFAULT_PROJECT: &str = "default";

/// Whether `obj` is an Argo CD AppProject.
pub fn is_app_project(obj: &Value) -> bool {
    obj.get("apiVersion").and_then(Value::as_str) == Some(ARGOCD_API_VERSION)
        && obj.get("kind").and_then(Value::as_str) == Some("AppProject")
}

/// One glob, kept with its text for messages.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    fn new(text: &str) -> Result<Self, String> {
        let glob =
            Glob::new(text).map_err(|e| format!("\"{text}\" is not a valid pattern: {e}"))?;
        Ok(Pattern {
            text: text.to_string(),
            matcher: glob.compile_matcher(),
        })
    }

    fn matches(&self, s: &str) -> bool {
        self.text == "*" || self.matcher.is_match(s)
    }
}

/// A `{group, kind}` pattern of a resource list.
#[derive(Debug, Clone)]
struct GroupKind {
    group: Pattern,
    kind: Pattern,
}

impl GroupKind {
    fn matches(&self, group: &str, kind: &str) -> bool {
        self.group.matches(group) && self.kind.matches(kind)
    }
}

#[derive(Debug, Clone)]
struct ProjectDestination {
    namespace: Pattern,
    server: Option<Pattern>,
    name: Option<Pattern>,
}

/// A parsed AppProject.
#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub origin: ObjectOrigin,
    source_repos: Vec<(bool, Pattern)>,
    destinations: Vec<ProjectDestination>,
    cluster_whitelist: Vec<GroupKind>,
    cluster_blacklist: Vec<GroupKind>,
    namespace_whitelist: Option<Vec<GroupKind>>,
    namespace_blacklist: Vec<GroupKind>,
}

impl Project {
    /// Parses an AppProject; the error names the file and the field.
    pub fn from_object(obj: &Value, origin: &ObjectOrigin) -> Result<Project, ModelError> {
        let err = |field: &str, message: String| ModelError {
            file: origin.file.clone(),
            doc: origin.doc,
            app: None,
            field: field.to_string(),
            message,
        };
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err("metadata.name", "AppProject has no metadata.name".into()))?
            .to_string();
        let err = |field: &str, message: String| ModelError {
            message: format!("AppProject \"{name}\": {message}"),
            ..err(field, String::new())
        };
        let spec = match obj.get("spec") {
            None | Some(Value::Null) => &Value::Null,
            Some(s @ Value::Object(_)) => s,
            Some(other) => {
                return Err(err(
                    "spec",
                    format!("must be a mapping, found {}", type_name(other)),
                ))
            }
        };
        let list = |field: &str| -> Result<Vec<Value>, ModelError> {
            match spec.get(field) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => Ok(items.clone()),
                Some(other) => Err(err(
                    &format!("spec.{field}"),
                    format!("must be a sequence, found {}", type_name(other)),
                )),
            }
        };
        let text = |v: &Value, field: &str| -> Result<Option<String>, ModelError> {
            match v.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(err(
                    field,
                    format!("must be a string, found {}", type_name(other)),
                )),
            }
        };
        let pattern = |s: &str, field: &str| Pattern::new(s).map_err(|m| err(field, m));
        let group_kinds = |field: &str| -> Result<Vec<GroupKind>, ModelError> {
            let path = format!("spec.{field}");
            list(field)?
                .iter()
                .map(|item| {
                    let group = text(item, "group")?.unwrap_or_default();
                    let kind = text(item, "kind")?.unwrap_or_else(|| "*".into());
                    Ok(GroupKind {
                        group: pattern(&group, &path)?,
                        kind: pattern(&kind, &path)?,
                    })
                })
                .collect()
        };
        let mut source_repos = Vec::new();
        for repo in list("sourceRepos")? {
            let Value::String(s) = repo else {
                return Err(err(
                    "spec.sourceRepos",
                    format!("entries must be strings, found {}", type_name(&repo)),
                ));
            };
            let (deny, glob) = match s.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, s.as_str()),
            };
            source_repos.push((deny, pattern(glob, "spec.sourceRepos")?));
        }
        let mut destinations = Vec::new();
        for d in list("destinations")? {
            let namespace = text(&d, "namespace")?.unwrap_or_else(|| "*".into());
            destinations.push(ProjectDestination {
                namespace: pattern(&namespace, "spec.destinations")?,
                server: text(&d, "server")?
                    .map(|s| pattern(&s, "spec.destinations"))
                    .transpose()?,
                name: text(&d, "name")?
                    .map(|s| pattern(&s, "spec.destinations"))
                    .transpose()?,
            });
        }
        let namespace_whitelist = match spec.get("namespaceResourceWhitelist") {
            None | Some(Value::Null) => None,
            Some(_) => Some(group_kinds("namespaceResourceWhitelist")?),
        };
        Ok(Project {
            name: name.clone(),
            origin: origin.clone(),
            source_repos,
            destinations,
            cluster_whitelist: group_kinds("clusterResourceWhitelist")?,
            cluster_blacklist: group_kinds("clusterResourceBlacklist")?,
            namespace_whitelist,
            namespace_blacklist: group_kinds("namespaceResourceBlacklist")?,
        })
    }

    /// Why the project refuses an app's repository, if it does.
    pub fn refuses_source(&self, repo_url: &str) -> Option<String> {
        let allowed = self
            .source_repos
            .iter()
            .any(|(deny, p)| !deny && p.matches(repo_url));
        let denied = self
            .source_repos
            .iter()
            .find(|(deny, p)| *deny && p.matches(repo_url));
        match (allowed, denied) {
            (_, Some((_, p))) => Some(format!(
                "project \"{}\" denies repository {repo_url} (!{})",
                self.name, p.text
            )),
            (false, None) => Some(format!(
                "project \"{}\" does not allow repository {repo_url} (sourceRepos: {})",
                self.name,
                self.describe_sources()
            )),
            (true, None) => None,
        }
    }

    fn describe_sources(&self) -> String {
        if self.source_repos.is_empty() {
            return "none".into();
        }
        self.source_repos
            .iter()
            .map(|(deny, p)| format!("{}{}", if *deny { "!" } else { "" }, p.text))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Why the project refuses an app's destination, if it does.
    pub fn refuses_destination(
        &self,
        namespace: &str,
        server: Option<&str>,
        name: Option<&str>,
    ) -> Option<String> {
        let ok = self.destinations.iter().any(|d| {
            d.namespace.matches(namespace)
                && match (server, &d.server) {
                    (Some(s), Some(p)) => p.matches(s),
                    _ => true,
                }
                && match (name, &d.name) {
                    (Some(n), Some(p)) => p.matches(n),
                    _ => true,
                }
        });
        (!ok).then(|| {
            format!(
                "project \"{}\" does not allow destination namespace \"{namespace}\"",
                self.name
            )
        })
    }

    /// Why the project refuses an object of `group`/`kind`, if it does.
    pub fn refuses_resource(&self, group: &str, kind: &str, namespaced: bool) -> Option<String> {
        let gk = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let name = &self.name;
        if namespaced {
            if self
                .namespace_blacklist
                .iter()
                .any(|p| p.matches(group, kind))
            {
                return Some(format!(
                    "project \"{name}\" blacklists namespaced kind {gk}"
                ));
            }
            if let Some(white) = &self.namespace_whitelist {
                if !white.iter().any(|p| p.matches(group, kind)) {
                    return Some(format!(
                        "project \"{name}\" does not whitelist namespaced kind {gk}"
                    ));
                }
            }
            None
        } else if !self
            .cluster_whitelist
            .iter()
            .any(|p| p.matches(group, kind))
        {
            Some(format!(
                "project \"{name}\" does not whitelist cluster-scoped kind {gk} (clusterResourceWhitelist)"
            ))
        } else if self
            .cluster_blacklist
            .iter()
            .any(|p| p.matches(group, kind))
        {
            Some(format!(
                "project \"{name}\" blacklists cluster-scoped kind {gk}"
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn project(spec: Value) -> Project {
        let obj = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                         "metadata": {"name": "team"}, "spec": spec});
        Project::from_object(
            &obj,
            &ObjectOrigin {
                file: "projects/team.yaml".into(),
                doc: 0,
            },
        )
        .expect("parses")
    }

    #[test]
    fn sources_allow_globs_and_deny_negations() {
        let p = project(
            json!({"sourceRepos": ["https://git.example.com/team/*", "!https://git.example.com/team/secret*"]}),
        );
        assert_eq!(
            p.refuses_source("https://git.example.com/team/app.git"),
            None
        );
        assert!(p
            .refuses_source("https://git.example.com/other/app.git")
            .unwrap()
            .contains("does not allow repository"));
        assert!(p
            .refuses_source("https://git.example.com/team/secret.git")
            .unwrap()
            .contains("denies"));
        let none = project(json!({}));
        assert!(none
            .refuses_source("https://x/y")
            .unwrap()
            .contains("sourceRepos: none"));
        assert_eq!(
            project(json!({"sourceRepos": ["*"]})).refuses_source("file:///r"),
            None
        );
    }

    #[test]
    fn destinations_match_namespace_and_server_when_named() {
        let p = project(
            json!({"destinations": [{"namespace": "team-*", "server": "https://kubernetes.default.svc"}]}),
        );
        assert_eq!(p.refuses_destination("team-a", None, None), None);
        assert_eq!(
            p.refuses_destination("team-a", Some("https://kubernetes.default.svc"), None),
            None
        );
        assert!(p
            .refuses_destination("team-a", Some("https://other"), None)
            .is_some());
        assert!(p.refuses_destination("kube-system", None, None).is_some());
    }

    #[test]
    fn resource_lists_as_argo_cd_reads_them() {
        let p = project(json!({
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            "namespaceResourceBlacklist": [{"group": "", "kind": "ResourceQuota"}]
        }));
        assert_eq!(p.refuses_resource("", "Namespace", false), None);
        assert!(p
            .refuses_resource("rbac.authorization.k8s.io", "ClusterRole", false)
            .unwrap()
            .contains(
                "does not whitelist cluster-scoped kind ClusterRole.rbac.authorization.k8s.io"
            ));
        assert!(p.refuses_resource("", "ResourceQuota", true).is_some());
        assert_eq!(p.refuses_resource("apps", "Deployment", true), None);
        let white =
            project(json!({"namespaceResourceWhitelist": [{"group": "apps", "kind": "*"}]}));
        assert_eq!(white.refuses_resource("apps", "Deployment", true), None);
        assert!(white.refuses_resource("", "ConfigMap", true).is_some());
        // No cluster whitelist: no cluster-scoped kind at all.
        assert!(white.refuses_resource("", "Namespace", false).is_some());
        let all = project(json!({"clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}));
        assert_eq!(
            all.refuses_resource("rbac.authorization.k8s.io", "ClusterRole", false),
            None
        );
    }

    #[test]
    fn malformed_projects_name_the_field() {
        let obj = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                         "metadata": {"name": "team"}, "spec": {"sourceRepos": "x"}});
        let e = Project::from_object(
            &obj,
            &ObjectOrigin {
                file: "p.yaml".into(),
                doc: 0,
            },
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "p.yaml: spec.sourceRepos: AppProject \"team\": must be a sequence, found a string"
        );
    }
}
