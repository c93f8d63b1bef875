//! OpenAPI v3 documents: the `/openapi/v3` index of group-versions and, per
//! group-version, a document whose paths carry `x-kubernetes-action` and
//! `x-kubernetes-group-version-kind` (with the `fieldValidation`, `dryRun`,
//! `fieldManager` and `force` query parameters kubectl looks for) and whose
//! component schemas are permissive (`x-kubernetes-preserve-unknown-fields`).
//! Enough for kubectl's server-side field validation check; not a schema
//! validator.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::resources::{Registry, ResourceType};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";

/// `api/v1` or `apis/{group}/{version}`: the index key of a group-version.
pub fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn hash(doc: &Value) -> String {
    hex::encode_upper(Sha256::digest(doc.to_string().as_bytes()))
}

/// `/openapi/v3`: every served group-version with its document's URL.
pub fn index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    let mut gvs: Vec<(String, String)> = vec![(String::new(), "v1".into())];
    for (g, vs) in reg.groups() {
        for v in vs {
            gvs.push((g.clone(), v));
        }
    }
    for (g, v) in gvs {
        if let Some(doc) = document(reg, &g, &v) {
            let key = gv_key(&g, &v);
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", hash(&doc))}),
            );
        }
    }
    json!({"paths": paths})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description,
        "schema": {"type": "string", "uniqueItems": true}})
}

fn path_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": format!("{name} of the resource"),
        "schema": {"type": "string", "uniqueItems": true}})
}

fn schema_ref(def: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{def}")})
}

fn responses(def: &str, codes: &[&str]) -> Value {
    let mut m = Map::new();
    for c in codes {
        m.insert(
            c.to_string(),
            json!({"description": "OK", "content": {"application/json": {"schema": schema_ref(def)}}}),
        );
    }
    Value::Object(m)
}

fn op(
    t: &ResourceType,
    action: &str,
    op_id: &str,
    params: Vec<Value>,
    def: &str,
    codes: &[&str],
) -> Value {
    json!({
        "operationId": op_id,
        "parameters": params,
        "responses": responses(def, codes),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
    })
}

fn body(def: &str) -> Value {
    json!({"content": {"*/*": {"schema": schema_ref(def)}}, "required": true})
}

fn patch_op(t: &ResourceType, op_id: &str, mut params: Vec<Value>, def: &str) -> Value {
    params.extend([
        query("dryRun", "When present, indicates that modifications should not be persisted."),
        query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."),
        json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests.", "schema": {"type": "boolean", "uniqueItems": true}}),
    ]);
    let mut o = op(t, "patch", op_id, params, def, &["200", "201"]);
    let mut content = Map::new();
    for ct in [
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ] {
        content.insert(ct.into(), json!({"schema": schema_ref(PATCH)}));
    }
    o["requestBody"] = json!({"content": content, "required": true});
    o
}

fn write_params(mut params: Vec<Value>) -> Vec<Value> {
    params.extend([
        query("dryRun", "When present, indicates that modifications should not be persisted."),
        query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
        query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."),
    ]);
    params
}

fn add_paths(paths: &mut Map<String, Value>, t: &ResourceType) {
    let def = t.definition_name();
    let list_def = format!("{def}List");
    let prefix = if t.group.is_empty() {
        format!("/api/{}", t.version)
    } else {
        format!("/apis/{}/{}", t.group, t.version)
    };
    let (collection, mut scope) = if t.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", t.plural),
            vec![path_param("namespace")],
        )
    } else {
        (format!("{prefix}/{}", t.plural), vec![])
    };
    let id = format!("{}{}", t.kind, if t.namespaced { "Namespaced" } else { "" });
    paths.insert(
        collection.clone(),
        json!({
            "get": op(t, "list", &format!("list{id}"), scope.clone(), &list_def, &["200"]),
            "post": {
                "operationId": format!("create{id}"),
                "parameters": write_params(scope.clone()),
                "requestBody": body(&def),
                "responses": responses(&def, &["200", "201", "202"]),
                "x-kubernetes-action": "post",
                "x-kubernetes-group-version-kind": {"group": t.group, "version": t.version, "kind": t.kind},
            },
            "delete": op(t, "deletecollection", &format!("deleteCollection{id}"), scope.clone(), STATUS, &["200"]),
        }),
    );
    scope.push(path_param("name"));
    let mut put = op(
        t,
        "put",
        &format!("replace{id}"),
        write_params(scope.clone()),
        &def,
        &["200", "201"],
    );
    put["requestBody"] = body(&def);
    paths.insert(
        format!("{collection}/{{name}}"),
        json!({
            "get": op(t, "get", &format!("read{id}"), scope.clone(), &def, &["200"]),
            "put": put,
            "patch": patch_op(t, &format!("patch{id}"), scope.clone(), &def),
            "delete": op(t, "delete", &format!("delete{id}"), scope.clone(), STATUS, &["200", "202"]),
        }),
    );
    if t.status {
        let mut put = op(
            t,
            "put",
            &format!("replace{id}Status"),
            write_params(scope.clone()),
            &def,
            &["200", "201"],
        );
        put["requestBody"] = body(&def);
        paths.insert(
            format!("{collection}/{{name}}/status"),
            json!({
                "get": op(t, "get", &format!("read{id}Status"), scope.clone(), &def, &["200"]),
                "put": put,
                "patch": patch_op(t, &format!("patch{id}Status"), scope.clone(), &def),
            }),
        );
    }
}

fn kind_schema(t: &ResourceType, list: bool) -> Value {
    let kind = if list {
        format!("{}List", t.kind)
    } else {
        t.kind.clone()
    };
    let mut props = json!({
        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
        "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
        "metadata": {"allOf": [schema_ref(OBJECT_META)], "default": {}},
    });
    if list {
        props["metadata"] = json!({"type": "object"});
        props["items"] = json!({"type": "array", "items": {"allOf": [schema_ref(&t.definition_name())], "default": {}}});
    }
    json!({
        "type": "object",
        "description": format!("{kind} (served by the kubesync emulator; fields are not validated)"),
        "properties": props,
        "x-kubernetes-preserve-unknown-fields": true,
        "x-kubernetes-group-version-kind": [{"group": t.group, "version": t.version, "kind": kind}],
    })
}

/// The document of one group-version, `None` when it is not served.
pub fn document(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let types = reg.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for t in &types {
        add_paths(&mut paths, t);
        schemas.insert(t.definition_name(), kind_schema(t, false));
        schemas.insert(format!("{}List", t.definition_name()), kind_schema(t, true));
    }
    for def in [OBJECT_META, PATCH, STATUS] {
        schemas.insert(
            def.into(),
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_ops_carry_what_kubectl_checks() {
        let reg = Registry::default();
        let doc = document(&reg, "apps", "v1").expect("apps/v1");
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-action"], "patch");
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(p["parameters"]
            .as_array()
            .expect("params")
            .iter()
            .any(|q| q["name"] == "fieldValidation" && q["in"] == "query"));
        let idx = index(&reg);
        assert!(idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .expect("url")
            .starts_with("/openapi/v3/apis/apps/v1?hash="));
        assert!(idx["paths"].get("api/v1").is_some());
    }
}
