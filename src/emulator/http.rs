//! The HTTP face of the emulator: resolves a request path into discovery,
//! OpenAPI, `/version`, the emulator's own `/emulator/requests`, or an API
//! resource request; checks the bearer token; counts the request and runs the
//! request hooks; decodes query parameters and bodies (JSON, YAML, the patch
//! formats, a 3 MiB limit) into `cluster` calls; and encodes results and
//! `Status` errors the way the real API server does.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::accounting::RequestAccounting;
use super::cluster::{
    Cluster, DeleteOptions, ListOptions, PatchType, Propagation, Subresource, WatchStart,
    WriteOptions,
};
use super::discovery;
use super::errors::{ApiError, Cause};
use super::hooks::{RequestHook, RequestInfo};
use super::openapi;
use super::resources::{Registry, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::table;
use super::watch::{self, WatchParams};

/// The real server's request body limit.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP layer.
pub(crate) struct Server {
    pub cluster: Cluster,
    pub accounting: Arc<RequestAccounting>,
    pub hooks: Vec<Arc<dyn RequestHook>>,
    pub token: Option<String>,
    pub version: String,
    pub address: String,
    pub bookmark_interval: Duration,
    pub default_watch_timeout: Duration,
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

type Query = HashMap<String, String>;

fn parse_query(q: Option<&str>) -> Query {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn json_response(code: u16, value: &Value) -> Response {
    json_typed(code, value, "application/json")
}

fn json_typed(code: u16, value: &Value, content_type: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, content_type.to_string())],
        value.to_string(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.to_status())
}

/// A response whose body fails before anything is written: hyper closes
/// the connection and the client sees it drop without an answer.
fn dropped_connection() -> Response {
    let failing = futures::stream::once(async {
        Err::<bytes::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "fault injection: connection dropped",
        ))
    });
    Response::new(Body::from_stream(failing))
}

fn text_404() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404 page not found\n",
    )
        .into_response()
}

/// Where a path leads.
enum Route {
    Version,
    Health,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    OpenApiV3Index,
    OpenApiV3(String, String),
    Resource(ResourceRoute),
    UnknownResource,
    NotFound,
}

struct ResourceRoute {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn route(reg: &Registry, path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz"] | ["livez"] | ["readyz"] => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["openapi", "v3"] => Route::OpenApiV3Index,
        ["openapi", "v3", "api", v] => Route::OpenApiV3(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiV3(g.to_string(), v.to_string()),
        ["api", v, rest @ ..] => resource_route(reg, "", v, rest),
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v, rest @ ..] => resource_route(reg, g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(reg: &Registry, group: &str, version: &str, rest: &[&str]) -> Route {
    if !reg.serves_group_version(group, version) {
        return if group.is_empty() || rest.is_empty() {
            Route::NotFound
        } else {
            Route::UnknownResource
        };
    }
    if rest.is_empty() {
        return Route::GroupVersion(group.to_string(), version.to_string());
    }
    let (namespace, rest) = match rest {
        ["namespaces", ns, res, tail @ ..]
            if reg
                .lookup(group, version, res)
                .is_some_and(|t| t.namespaced) =>
        {
            (Some(ns.to_string()), {
                let mut v = vec![*res];
                v.extend_from_slice(tail);
                v
            })
        }
        _ => (None, rest.to_vec()),
    };
    let Some(rt) = reg.lookup(group, version, rest[0]) else {
        return Route::UnknownResource;
    };
    let (name, sub) = match &rest[1..] {
        [] => (None, None),
        [n] => (Some(n.to_string()), None),
        [n, s] => {
            let ok = (*s == "status" && rt.status)
                || (*s == "scale" && rt.scale)
                || (*s == "finalize" && rt.plural == "namespaces" && rt.group.is_empty());
            if !ok {
                return Route::UnknownResource;
            }
            (Some(n.to_string()), Some(s.to_string()))
        }
        _ => return Route::UnknownResource,
    };
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Route::UnknownResource;
    }
    Route::Resource(ResourceRoute {
        rt,
        namespace,
        name,
        sub,
    })
}

fn verb_of(method: &Method, r: &ResourceRoute, q: &Query) -> Option<&'static str> {
    let watch = q
        .get("watch")
        .is_some_and(|w| w == "1" || w.eq_ignore_ascii_case("true"));
    Some(match (method.as_str(), r.name.is_some()) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

fn header_str(h: &HeaderMap, name: header::HeaderName) -> &str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The field manager of a write: the `fieldManager` parameter, else the
/// user agent's first token (as the real server derives it).
fn field_manager(q: &Query, user_agent: &str) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let prefix = user_agent.split('/').next().unwrap_or_default().trim();
    let prefix: String = prefix.chars().take(128).collect();
    if prefix.is_empty() {
        "unknown".into()
    } else {
        prefix
    }
}

fn dry_run(q: &Query) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::invalid(
            "meta.k8s.io",
            "CreateOptions",
            "",
            vec![Cause {
                reason: "FieldValueNotSupported".into(),
                message: format!("Unsupported value: {other:?}: supported values: \"All\""),
                field: "dryRun".into(),
            }],
        )),
    }
}

async fn read_body(body: Body, headers: &HeaderMap) -> Result<bytes::Bytes, ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > MAX_BODY_BYTES {
            return Err(ApiError::too_large(MAX_BODY_BYTES));
        }
    }
    match http_body_util::Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error reading request body: {e}"
        ))),
    }
}

fn media_type(headers: &HeaderMap) -> String {
    header_str(headers, header::CONTENT_TYPE)
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Decodes a create/update body (JSON or YAML).
fn decode_object(headers: &HeaderMap, bytes: &[u8]) -> Result<Value, ApiError> {
    match media_type(headers).as_str() {
        "" | "application/json" | "*/*" => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        }),
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(bytes)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "error decoding YAML: error converting YAML to JSON: yaml: {e}"
                ))
            }),
        // Protobuf (what kubectl's typed generators such as `kubectl create
        // namespace` send) is not decoded yet.
        _ => Err(ApiError::unsupported_media_type(&[
            "application/json",
            "application/yaml",
        ])),
    }
}

/// The router: one fallback handler that resolves paths itself, since CRDs
/// add resources at run time.
pub(crate) fn router(server: Arc<Server>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(server)
}

fn authorized(s: &Server, headers: &HeaderMap) -> bool {
    match &s.token {
        None => true,
        Some(t) => header_str(headers, header::AUTHORIZATION)
            .strip_prefix("Bearer ")
            .is_some_and(|given| given.trim() == t),
    }
}

async fn handle(State(s): State<Arc<Server>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let q = parse_query(parts.uri.query());
    if !authorized(&s, &parts.headers) {
        return error_response(&ApiError::unauthorized());
    }
    if path == "/emulator/requests/journal" {
        let writes_only = q.get("writes").map(|v| v == "true").unwrap_or(false);
        let entries: Vec<_> = s
            .accounting
            .journal()
            .into_iter()
            .filter(|e| !writes_only || e.is_write())
            .collect();
        return json_response(200, &json!({ "items": entries }));
    }
    if path == "/emulator/requests" {
        return match parts.method {
            Method::GET => json_response(200, &json!(s.accounting.snapshot())),
            Method::DELETE | Method::POST => {
                s.accounting.reset();
                json_response(200, &json!(s.accounting.snapshot()))
            }
            _ => error_response(&ApiError::method_not_allowed()),
        };
    }
    let reg = s.cluster.registry();
    let r = route(&reg, &path);
    let user_agent = header_str(&parts.headers, header::USER_AGENT).to_string();
    let mut info = RequestInfo {
        method: parts.method.as_str().to_string(),
        path: path.clone(),
        verb: parts.method.as_str().to_ascii_lowercase(),
        user_agent: user_agent.clone(),
        ..Default::default()
    };
    if let Route::Resource(rr) = &r {
        info.is_resource = true;
        info.group = rr.rt.group.clone();
        info.version = rr.rt.version.clone();
        info.resource = rr.rt.plural.clone();
        info.subresource = rr.sub.clone();
        info.namespace = rr.namespace.clone();
        info.name = rr.name.clone();
        if let Some(v) = verb_of(&parts.method, rr, &q) {
            info.verb = v.to_string();
        }
    }
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All");
    s.accounting.record_request(&info, dry_run);
    for hook in &s.hooks {
        if let Some(fault) = hook.before(&info) {
            if let Some(d) = fault.delay {
                tokio::time::sleep(d).await;
            }
            if fault.drop_connection {
                return dropped_connection();
            }
            if let Some(e) = fault.error {
                let mut resp = error_response(&e);
                if let Some(secs) = fault.retry_after_seconds {
                    resp.headers_mut()
                        .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
                }
                return resp;
            }
        }
    }
    let accept = header_str(&parts.headers, header::ACCEPT).to_string();
    let get_only = |resp: Response| -> Response {
        if parts.method == Method::GET {
            resp
        } else {
            error_response(&ApiError::method_not_allowed())
        }
    };
    match r {
        Route::Version => get_only(json_response(200, &discovery::version(&s.version))),
        Route::Health => get_only((StatusCode::OK, "ok").into_response()),
        Route::Api => get_only(match discovery::wants_aggregated(&accept) {
            Some(ct) => json_typed(200, &discovery::aggregated(&reg, true, ct), ct),
            None => json_response(200, &discovery::api_versions(&s.address)),
        }),
        Route::Apis => get_only(match discovery::wants_aggregated(&accept) {
            Some(ct) => json_typed(200, &discovery::aggregated(&reg, false, ct), ct),
            None => json_response(200, &discovery::group_list(&reg)),
        }),
        Route::Group(g) => match discovery::group(&reg, &g) {
            Some(v) => get_only(json_response(200, &v)),
            None => text_404(),
        },
        Route::GroupVersion(g, v) => match discovery::resource_list(&reg, &g, &v) {
            Some(doc) => get_only(json_response(200, &doc)),
            None => text_404(),
        },
        Route::OpenApiV3Index => get_only(json_response(200, &openapi::index(&reg))),
        Route::OpenApiV3(g, v) => match openapi::document(&reg, &g, &v) {
            Some(doc) => get_only(json_response(200, &doc)),
            None => text_404(),
        },
        Route::UnknownResource => error_response(&ApiError::unknown_resource()),
        Route::NotFound => text_404(),
        Route::Resource(rr) => {
            let verb = info.verb.clone();
            match serve_resource(
                &s,
                rr,
                &verb,
                &q,
                &parts.headers,
                &user_agent,
                &accept,
                body,
            )
            .await
            {
                Ok(resp) => resp,
                Err(e) => error_response(&e),
            }
        }
    }
}

/// A list as the real server encodes it: built-in kinds' items without
/// their own `apiVersion`/`kind` (typed lists omit them), custom resources'
/// lists with `metadata.continue` always present.
fn wire_list(rt: &ResourceType, mut list: Value) -> Value {
    if !list
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
    {
        return list;
    }
    if rt.crd.is_some() {
        if let Some(meta) = list.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.entry("continue").or_insert_with(|| json!(""));
        }
        return list;
    }
    if let Some(items) = list.get_mut("items").and_then(Value::as_array_mut) {
        for item in items.iter_mut().filter_map(Value::as_object_mut) {
            item.remove("apiVersion");
            item.remove("kind");
        }
    }
    list
}

fn list_options(q: &Query, rt: &ResourceType) -> Result<ListOptions, ApiError> {
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(l.parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "limit: Invalid value: {l:?}: must be a non-negative integer"
            ))
        })?),
        None => None,
    };
    Ok(ListOptions {
        label_selector: LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?,
        field_selector: FieldSelector::parse(
            q.get("fieldSelector").map_or("", String::as_str),
            &rt.plural,
        )?,
        limit,
        continue_token: q.get("continue").cloned(),
    })
}

fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions {
        dry_run: dry_run(q)?,
        ..Default::default()
    };
    let mut policy = q.get("propagationPolicy").cloned();
    let mut orphan = q.get("orphanDependents").map(|v| v == "true");
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
        })?;
        if let Some(p) = v.get("propagationPolicy").and_then(Value::as_str) {
            policy = Some(p.to_string());
        }
        if let Some(o) = v.get("orphanDependents").and_then(Value::as_bool) {
            orphan = Some(o);
        }
        if v.get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "All"))
        {
            opts.dry_run = true;
        }
        opts.precondition_uid = v
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string);
        opts.precondition_resource_version = v
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
    }
    opts.propagation = match policy.as_deref() {
        None | Some("") => {
            if orphan == Some(true) {
                Propagation::Orphan
            } else {
                Propagation::Background
            }
        }
        Some("Background") => Propagation::Background,
        Some("Foreground") => Propagation::Foreground,
        Some("Orphan") => Propagation::Orphan,
        Some(other) => {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "DeleteOptions",
                "",
                vec![Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!(
                        "Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                    field: "propagationPolicy".into(),
                }],
            ))
        }
    };
    Ok(opts)
}

fn maybe_table(cluster: &Cluster, rt: &ResourceType, accept: &str, v: Value) -> Response {
    if !table::wants_table(accept) {
        return json_response(200, &v);
    }
    // A custom resource's printer columns come from its CRD.
    let columns = rt
        .crd
        .as_deref()
        .and_then(|crd_name| {
            let crds = cluster.resource("apiextensions.k8s.io/v1", "CustomResourceDefinition")?;
            cluster.get(&crds, None, crd_name).ok()
        })
        .map(|crd| table::PrinterColumn::of_crd(&crd, &rt.version))
        .unwrap_or_default();
    json_response(200, &table::to_table(&v, &columns))
}

#[allow(clippy::too_many_arguments)]
async fn serve_resource(
    s: &Server,
    rr: ResourceRoute,
    verb: &str,
    q: &Query,
    headers: &HeaderMap,
    user_agent: &str,
    accept: &str,
    body: Body,
) -> Result<Response, ApiError> {
    let rt = rr.rt.clone();
    let ns = rr.namespace.as_deref();
    let name = rr.name.as_deref().unwrap_or_default();
    let sub = match rr.sub.as_deref() {
        Some("finalize") | None => None,
        Some(other) => Subresource::parse(other),
    };
    let cluster = &s.cluster;
    let write = || -> Result<WriteOptions, ApiError> {
        Ok(WriteOptions {
            dry_run: dry_run(q)?,
            field_manager: field_manager(q, user_agent),
            strict: q.get("fieldValidation").map(String::as_str) == Some("Strict"),
        })
    };
    match verb {
        "get" => {
            let v = match sub {
                Some(Subresource::Scale) => cluster.get_scale(&rt, ns, name)?,
                _ => cluster.get(&rt, ns, name)?,
            };
            Ok(maybe_table(cluster, &rt, accept, v))
        }
        "list" => {
            let opts = list_options(q, &rt)?;
            Ok(maybe_table(
                cluster,
                &rt,
                accept,
                wire_list(&rt, cluster.list(&rt, ns, &opts)?),
            ))
        }
        "watch" => {
            let opts = list_options(q, &rt)?;
            let mut field_selector = opts.field_selector;
            if let Some(n) = rr.name.as_deref() {
                field_selector = FieldSelector::parse(&format!("metadata.name={n}"), &rt.plural)?;
            }
            let send_initial = q.get("sendInitialEvents").is_some_and(|v| v == "true");
            let start = if send_initial {
                WatchStart::Now { initial: true }
            } else {
                match q.get("resourceVersion").map(String::as_str) {
                    None | Some("") | Some("0") => WatchStart::Now { initial: true },
                    Some(rv) => WatchStart::Since(rv.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
                        ))
                    })?),
                }
            };
            let timeout = q
                .get("timeoutSeconds")
                .and_then(|t| t.parse::<u64>().ok())
                .filter(|t| *t > 0)
                .map(Duration::from_secs)
                .unwrap_or(s.default_watch_timeout);
            let params = WatchParams {
                namespace: rr.namespace.clone(),
                label_selector: opts.label_selector,
                field_selector,
                bookmarks: q.get("allowWatchBookmarks").is_some_and(|v| v == "true"),
                initial_events_end: send_initial,
                timeout,
                bookmark_interval: s.bookmark_interval,
            };
            let body = match cluster.watch_begin(&rt, ns, start) {
                Ok(begin) => {
                    Body::from_stream(watch::stream(rt.clone(), params, begin, s.shutdown.clone()))
                }
                Err(e) => Body::from(watch::error_line(&e)),
            };
            Ok((
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/json"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
                .into_response())
        }
        "create" => {
            if rt.namespaced && ns.is_none() {
                return Err(ApiError::unknown_resource());
            }
            let opts = write()?;
            let bytes = read_body(body, headers).await?;
            let obj = decode_object(headers, &bytes)?;
            let created = cluster.create(&rt, ns, obj, &opts)?;
            Ok(json_response(201, &created))
        }
        "update" => {
            let opts = write()?;
            let bytes = read_body(body, headers).await?;
            let obj = decode_object(headers, &bytes)?;
            let updated = cluster.update(&rt, ns, name, obj, sub, &opts)?;
            Ok(json_response(200, &updated))
        }
        "patch" => {
            let opts = write()?;
            let force = q.get("force").map(|f| f == "true");
            let patch_type = match media_type(headers).as_str() {
                "application/merge-patch+json" => PatchType::Merge,
                "application/json-patch+json" => PatchType::Json,
                "application/strategic-merge-patch+json" if rt.strategic_merge() => {
                    PatchType::Strategic
                }
                "application/apply-patch+yaml" => PatchType::Apply {
                    force: force == Some(true),
                },
                _ => {
                    let mut accepted = vec![
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/apply-patch+yaml",
                    ];
                    if rt.strategic_merge() {
                        accepted.push("application/strategic-merge-patch+json");
                    }
                    return Err(ApiError::unsupported_media_type(&accepted));
                }
            };
            let is_apply = matches!(patch_type, PatchType::Apply { .. });
            if is_apply && q.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: is required for apply patch".into(),
                        field: "fieldManager".into(),
                    }],
                ));
            }
            if !is_apply && force.is_some() {
                return Err(ApiError::invalid(
                    "meta.k8s.io",
                    "PatchOptions",
                    "",
                    vec![Cause {
                        reason: "FieldValueForbidden".into(),
                        message: "Forbidden: may not be specified for non-apply patch".into(),
                        field: "force".into(),
                    }],
                ));
            }
            let bytes = read_body(body, headers).await?;
            let patch: Value = if is_apply {
                serde_yaml::from_slice(&bytes).map_err(|e| {
                    ApiError::bad_request(format!(
                        "error decoding YAML: error converting YAML to JSON: yaml: {e}"
                    ))
                })?
            } else {
                serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            };
            if is_apply && !patch.is_object() {
                return Err(ApiError::bad_request(
                    "error decoding YAML: the apply configuration must be a YAML or JSON object",
                ));
            }
            let (out, created) = cluster.patch(&rt, ns, name, patch_type, &patch, sub, &opts)?;
            Ok(json_response(if created { 201 } else { 200 }, &out))
        }
        "delete" => {
            let bytes = read_body(body, headers).await?;
            let opts = delete_options(q, &bytes)?;
            Ok(json_response(200, &cluster.delete(&rt, ns, name, &opts)?))
        }
        "deletecollection" => {
            if !rt.verbs.iter().any(|v| v == "deletecollection") {
                return Err(ApiError::method_not_allowed());
            }
            let bytes = read_body(body, headers).await?;
            let opts = delete_options(q, &bytes)?;
            let list = list_options(q, &rt)?;
            Ok(json_response(
                200,
                &wire_list(&rt, cluster.delete_collection(&rt, ns, &list, &opts)?),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}
