//! `ignoreDifferences`: which fields of which objects a comparison leaves
//! out (Argo CD's `ResourceIgnoreDifferences`). This module owns the rule
//! as data and its parsing from an Application (either kind) or from the
//! kubesync settings file; applying rules to objects is
//! [`crate::diff::ignore`]'s.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::app::{wrong_type, Ctx};
use super::ModelError;

/// One `ignoreDifferences` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IgnoreRule {
    /// API group glob (`""`, the core group, when omitted; `*` any).
    pub group: String,
    /// Kind glob (`*` any).
    pub kind: String,
    /// Only the object of this name (any when `None`).
    pub name: Option<String>,
    /// Only objects in this namespace (any when `None`).
    pub namespace: Option<String>,
    /// RFC 6901 pointers (`/spec/replicas`).
    pub json_pointers: Vec<String>,
    /// jq path expressions (`.spec.template.spec.containers[] | select(.name == "x") | .image`).
    pub jq_path_expressions: Vec<String>,
    /// Field managers whose fields (in the live object's `managedFields`) win over git.
    pub managed_fields_managers: Vec<String>,
}

/// Parses `key` of `obj` (a list of rules) at `path` (e.g. `spec.ignoreDifferences`).
pub(super) fn parse_rules(
    obj: &Value,
    key: &str,
    ctx: &Ctx,
    path: &str,
) -> Result<Vec<IgnoreRule>, ModelError> {
    let items = match obj.get(key) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(other) => return Err(ctx.err(path, wrong_type("a list", other))),
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{path}[{i}]");
        let Some(m) = item.as_object() else {
            return Err(ctx.err(&at, wrong_type("a mapping", item)));
        };
        ctx.only_known(
            m,
            &[
                "group",
                "kind",
                "name",
                "namespace",
                "jsonPointers",
                "jqPathExpressions",
                "managedFieldsManagers",
            ],
            &at,
        )?;
        let field = |k: &str| format!("{at}.{k}");
        let kind = ctx
            .opt_str(item, "kind", &field("kind"))?
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ctx.err(
                    &field("kind"),
                    "is required (a kind, or \"*\" for every kind)",
                )
            })?;
        let rule = IgnoreRule {
            group: ctx
                .opt_str(item, "group", &field("group"))?
                .unwrap_or_default(),
            kind,
            name: ctx
                .opt_str(item, "name", &field("name"))?
                .filter(|s| !s.is_empty()),
            namespace: ctx
                .opt_str(item, "namespace", &field("namespace"))?
                .filter(|s| !s.is_empty()),
            json_pointers: ctx.string_list(item, "jsonPointers", &field("jsonPointers"))?,
            jq_path_expressions: ctx.string_list(
                item,
                "jqPathExpressions",
                &field("jqPathExpressions"),
            )?,
            managed_fields_managers: ctx.string_list(
                item,
                "managedFieldsManagers",
                &field("managedFieldsManagers"),
            )?,
        };
        for glob in [&rule.group, &rule.kind] {
            if let Err(e) = crate::diff::ignore::glob(glob) {
                return Err(ctx.err(&at, format!("invalid glob \"{glob}\": {e}")));
            }
        }
        for (j, p) in rule.json_pointers.iter().enumerate() {
            if !p.starts_with('/') {
                return Err(ctx.err(
                    &format!("{at}.jsonPointers[{j}]"),
                    format!(
                        "\"{p}\" is not a JSON pointer (it starts with \"/\", e.g. /spec/replicas)"
                    ),
                ));
            }
        }
        for (j, e) in rule.jq_path_expressions.iter().enumerate() {
            if let Err(message) = crate::diff::ignore::check_jq(e) {
                return Err(ctx.err(&format!("{at}.jqPathExpressions[{j}]"), message));
            }
        }
        if rule.json_pointers.is_empty()
            && rule.jq_path_expressions.is_empty()
            && rule.managed_fields_managers.is_empty()
        {
            return Err(ctx.err(
                &at,
                "ignores nothing: give jsonPointers, jqPathExpressions or managedFieldsManagers",
            ));
        }
        out.push(rule);
    }
    Ok(out)
}
