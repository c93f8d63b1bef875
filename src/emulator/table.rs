//! Server-side printing: the `meta.k8s.io/v1` `Table` that `kubectl get`
//! asks for (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), with
//! the generic Name and Age columns the real server uses for kinds without
//! dedicated printers, and a custom resource's `additionalPrinterColumns`
//! (simple `.a.b.c` JSON paths; `date` columns print as ages).

use serde_json::{json, Value};

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|offer| {
        let params: Vec<String> = offer.split(';').map(|p| p.trim().to_string()).collect();
        params.iter().any(|p| p == "as=Table") && params.iter().any(|p| p == "g=meta.k8s.io")
    })
}

/// kubectl's short human durations: `45s`, `3m2s`, `25m`, `5h3m`, `20h`,
/// `3d4h`, `12d`.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s % 60 == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m % 60 == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        if h % 24 == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{}h", h % 24)
        }
    } else {
        format!("{d}d")
    }
}

fn age(obj: &Value) -> String {
    let ts = obj
        .pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok());
    match ts {
        Some(t) => human_age((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

/// One of a CRD version's `additionalPrinterColumns`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub kind: String,
    pub json_path: String,
    pub priority: i64,
}

impl PrinterColumn {
    /// The printer columns of `version` in a CRD object.
    pub fn of_crd(crd: &Value, version: &str) -> Vec<PrinterColumn> {
        crd.pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .find(|v| v.get("name").and_then(Value::as_str) == Some(version))
            })
            .and_then(|v| v.get("additionalPrinterColumns"))
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            kind: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn cell(&self, obj: &Value) -> Value {
        let pointer: String = self
            .json_path
            .trim_start_matches('.')
            .split('.')
            .filter(|p| !p.is_empty())
            .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
            .collect();
        match obj.pointer(&pointer) {
            None | Some(Value::Null) => json!(null),
            Some(Value::String(t)) if self.kind == "date" => {
                match chrono::DateTime::parse_from_rfc3339(t) {
                    Ok(t) => json!(human_age(
                        (chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds()
                    )),
                    Err(_) => json!(t),
                }
            }
            Some(v) => v.clone(),
        }
    }
}

fn row(obj: &Value, columns: &[PrinterColumn]) -> Value {
    let name = obj.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let mut cells = vec![name];
    if columns.is_empty() {
        cells.push(json!(age(obj)));
    } else {
        cells.extend(columns.iter().map(|c| c.cell(obj)));
    }
    json!({
        "cells": cells,
        "object": {
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
        },
    })
}

/// A Table of one object or of a list's items, with a custom resource's
/// printer columns when it has any (else Name and Age).
pub fn to_table(value: &Value, columns: &[PrinterColumn]) -> Value {
    let (rows, meta) = match value.get("items").and_then(Value::as_array) {
        Some(items) => (
            items.iter().map(|o| row(o, columns)).collect::<Vec<_>>(),
            value.get("metadata").cloned().unwrap_or(json!({})),
        ),
        None => (
            vec![row(value, columns)],
            json!({"resourceVersion": value.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))}),
        ),
    };
    let name_col = json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0});
    let mut definitions = vec![name_col];
    if columns.is_empty() {
        definitions.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    } else {
        definitions.extend(columns.iter().map(|c| {
            let kind = if c.kind == "date" { "string" } else { c.kind.as_str() };
            json!({"name": c.name, "type": kind, "format": "", "description": "", "priority": c.priority})
        }));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": definitions,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(185), "3m5s");
        assert_eq!(human_age(1500), "25m");
        assert_eq!(human_age(4 * 3600 + 120), "4h2m");
        assert_eq!(human_age(3 * 86400), "3d");
    }

    #[test]
    fn printer_columns() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": [
            {"name": "Sync", "type": "string", "jsonPath": ".status.sync.status"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas", "priority": 1}
        ]}]}});
        let cols = PrinterColumn::of_crd(&crd, "v1");
        assert_eq!(cols.len(), 2);
        let obj = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3}, "status": {"sync": {"status": "Synced"}}});
        let t = to_table(&obj, &cols);
        assert_eq!(t["rows"][0]["cells"], json!(["web", "Synced", 3]));
        assert_eq!(t["columnDefinitions"][1]["name"], "Sync");
        assert!(PrinterColumn::of_crd(&crd, "v2").is_empty());
    }

    #[test]
    fn accept() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
