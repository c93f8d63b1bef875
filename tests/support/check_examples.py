#!/usr/bin/env python3
"""Sanity checks of the example tree (bootstrap/, applications/, charts/, examples/).

Run from the repository root:  python3 tests/support/check_examples.py
Needs PyYAML and Jinja2; helm checks use tests/support/helm/helm (needs
helm-python-sdk) and kustomize checks use `kubectl kustomize` or `kustomize`;
each is skipped with a note when its tool is missing.

Checks: every plain YAML file parses; the Application tree under
bootstrap/root.yaml expands (nested parents included), every source path
exists, every dependsOn names a known app, the graph has no cycle, every
renderer is used; each app renders (directory, jinja via Jinja2, helm, kustomize,
transform) to valid objects; app-tier apps emit no cluster-scoped objects and
write only into their destination namespace.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELM = os.path.join(ROOT, "tests", "support", "helm", "helm")
CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "APIService", "IngressClass", "PriorityClass", "StorageClass", "PersistentVolume",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}
failures: list[str] = []
notes: list[str] = []


def fail(msg: str) -> None:
    failures.append(msg)


def load_all(text: str, where: str) -> list[dict]:
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        fail(f"{where}: YAML does not parse: {e}")
        return []


def check_plain_yaml() -> int:
    n = 0
    for top in ("bootstrap", "applications", "charts", "examples", "tests"):
        for dirpath, _dirs, files in os.walk(os.path.join(ROOT, top)):
            parts = dirpath.split(os.sep)
            if "templates" in parts:
                chart_dir = os.sep.join(parts[:parts.index("templates")])
                if os.path.exists(os.path.join(chart_dir, "Chart.yaml")):
                    continue  # helm templates are checked by rendering
            for f in files:
                if f.endswith((".yaml", ".yml")):
                    p = os.path.join(dirpath, f)
                    load_all(open(p, encoding="utf-8").read(), os.path.relpath(p, ROOT))
                    n += 1
    return n


def render_directory(path: str, opts: dict) -> list[dict]:
    include, exclude = opts.get("include"), opts.get("exclude")
    out = []
    for dirpath, dirs, files in os.walk(path):
        dirs.sort()
        if not opts.get("recurse") and dirpath != path:
            continue
        for f in sorted(files):
            rel = os.path.relpath(os.path.join(dirpath, f), path)
            if not f.endswith((".yaml", ".yml", ".json")):
                continue
            if include and not (fnmatch.fnmatch(f, include) or fnmatch.fnmatch(rel, include)):
                continue
            if exclude and (fnmatch.fnmatch(f, exclude) or fnmatch.fnmatch(rel, exclude)):
                continue
            out += load_all(open(os.path.join(dirpath, f), encoding="utf-8").read(), rel)
    return out


def render_jinja(path: str, app: dict, opts: dict) -> list[dict]:
    import jinja2  # noqa: PLC0415

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    ctx = dict(opts.get("vars") or {})
    ctx.update(name=app["metadata"]["name"],
               namespace=(app["spec"].get("destination") or {}).get("namespace", "default"),
               revision="0" * 40)
    out = []
    for f in sorted(os.listdir(path)):
        if f.endswith(".j2"):
            text = env.from_string(open(os.path.join(path, f), encoding="utf-8").read()).render(ctx)
            out += load_all(text, f)
    return out


def render_helm(path: str, app: dict, opts: dict) -> list[dict] | None:
    if not os.access(HELM, os.X_OK):
        return None
    ns = (app["spec"].get("destination") or {}).get("namespace", "default")
    cmd = [HELM, "template", opts.get("releaseName") or app["metadata"]["name"], path,
           "--namespace", ns, "--include-crds"]
    for vf in opts.get("valueFiles") or []:
        cmd += ["--values", os.path.join(path, vf)]
    tmp = None
    if opts.get("values"):
        tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        yaml.safe_dump(opts["values"], tmp)
        tmp.close()
        cmd += ["--values", tmp.name]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finally:
        if tmp:
            os.unlink(tmp.name)
    if r.returncode != 0:
        if "helm-python-sdk" in r.stderr:
            return None
        fail(f"{app['metadata']['name']}: helm template failed: {r.stderr.strip()}")
        return []
    return load_all(r.stdout, f"helm template {path}")


def render_kustomize(path: str, app: dict) -> list[dict] | None:
    if shutil.which("kubectl"):
        cmd = ["kubectl", "kustomize", path]
    elif shutil.which("kustomize"):
        cmd = ["kustomize", "build", path]
    else:
        return None
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        fail(f"{app['metadata']['name']}: kustomize failed: {r.stderr.strip()}")
        return []
    return load_all(r.stdout, f"kustomize {path}")


def render_transform(path: str, app: dict, opts: dict) -> list[dict]:
    out_dir = tempfile.mkdtemp()
    cmd = list(opts["command"])
    if "/" in cmd[0]:
        cmd[0] = os.path.join(path, cmd[0])
    env = {"PATH": "/usr/bin:/bin", "INDIR": path, "OUTDIR": out_dir}
    r = subprocess.run(cmd, cwd=path, env=env, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        fail(f"{app['metadata']['name']}: transform failed: {r.stderr.strip()}")
        return []
    objs = render_directory(out_dir, {"recurse": True})
    shutil.rmtree(out_dir)
    return objs


def render(app: dict) -> tuple[str, list[dict] | None]:
    src = app["spec"]["source"]
    path = os.path.join(ROOT, src.get("path", "."))
    if not os.path.isdir(path):
        fail(f"{app['metadata']['name']}: source path {src.get('path')} does not exist")
        return "missing", []
    for kind in ("helm", "kustomize", "directory", "jinja", "transform"):
        if kind in src:
            break
    else:
        kind = ("helm" if os.path.exists(os.path.join(path, "Chart.yaml"))
                else "kustomize" if os.path.exists(os.path.join(path, "kustomization.yaml"))
                else "jinja" if any(f.endswith(".j2") for f in os.listdir(path))
                else "directory")
    opts = src.get(kind) or {}
    if kind == "directory":
        return kind, render_directory(path, opts)
    if kind == "jinja":
        return kind, render_jinja(path, app, opts)
    if kind == "helm":
        return kind, render_helm(path, app, opts)
    if kind == "kustomize":
        return kind, render_kustomize(path, app)
    return kind, render_transform(path, app, opts)


def check_argocd_example() -> None:
    """examples/argocd-app-of-apps: the apps chart renders Argo CD Applications
    whose paths exist, and each child source renders."""
    base = "examples/argocd-app-of-apps"
    root = load_all(open(f"{base}/root.yaml", encoding="utf-8").read(), f"{base}/root.yaml")[0]
    app = {"metadata": {"name": "apps"}, "spec": {"destination": {"namespace": "argocd"}}}
    children = render_helm(os.path.join(ROOT, root["spec"]["source"]["path"]), app,
                           root["spec"]["source"].get("helm") or {})
    if children is None:
        notes.append("argocd example not rendered (helm wrapper unavailable)")
        return
    for child in children:
        name = child["metadata"]["name"]
        if child.get("apiVersion") != "argoproj.io/v1alpha1" or child.get("kind") != "Application":
            fail(f"argocd example: {name} is not an argoproj.io Application")
            continue
        src = child["spec"]["source"]
        opts = dict(src.get("helm") or {})
        if "helm" in src:
            values = dict(opts.pop("valuesObject", {}) or {})
            for p in opts.pop("parameters", []) or []:
                cur = values
                keys = p["name"].split(".")
                for k in keys[:-1]:
                    cur = cur.setdefault(k, {})
                cur[keys[-1]] = p["value"]
            opts["values"] = values
            src = dict(src, helm=opts)
        kind, objs = render({"metadata": {"name": name},
                             "spec": {"source": src, "destination": child["spec"]["destination"]}})
        wave = child["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave")
        print(f"  argocd: {name:20} {kind:9} wave={wave} objects={len(objs or [])}")


def main() -> int:
    os.chdir(ROOT)
    print(f"plain YAML files parsed: {check_plain_yaml()}")
    root = load_all(open("bootstrap/root.yaml", encoding="utf-8").read(), "bootstrap/root.yaml")[0]
    apps: dict[str, dict] = {}
    parent: dict[str, str] = {}
    renderers: dict[str, str] = {}
    queue = [root]
    system_namespaces = {"kube-system"}
    while queue:
        app = queue.pop(0)
        name = app["metadata"]["name"]
        if name in apps:
            fail(f"duplicate application {name}")
            continue
        apps[name] = app
        kind, objs = render(app)
        renderers[name] = kind
        if objs is None:
            notes.append(f"{name}: {kind} not checked (tool missing)")
            continue
        spec = app["spec"]
        ns = (spec.get("destination") or {}).get("namespace")
        for o in objs:
            if o.get("kind") == "Application":
                parent[o["metadata"]["name"]] = name
                queue.append(o)
                continue
            if not o.get("apiVersion") or not o.get("kind") or not (o.get("metadata") or {}).get("name"):
                fail(f"{name}: object without apiVersion/kind/metadata.name: {o}")
                continue
            if spec.get("tier") == "system" and o["kind"] == "Namespace":
                system_namespaces.add(o["metadata"]["name"])
            if spec.get("tier", "app") == "app":
                if o["kind"] in CLUSTER_SCOPED:
                    fail(f"{name}: app tier emits cluster-scoped {o['kind']}/{o['metadata']['name']}")
                ons = o["metadata"].get("namespace")
                if ons and ons != ns:
                    fail(f"{name}: writes into namespace {ons}, not its destination {ns}")
    for name, app in apps.items():
        ns = (app["spec"].get("destination") or {}).get("namespace")
        if app["spec"].get("tier", "app") == "app" and ns in system_namespaces:
            fail(f"{name}: app tier targets system namespace {ns}")
        for dep in app["spec"].get("dependsOn") or []:
            if dep not in apps:
                fail(f"{name}: dependsOn unknown app {dep}")
    # cycles (dependsOn plus parent -> child edges)
    edges = {n: set(a["spec"].get("dependsOn") or []) for n, a in apps.items()}
    for child, par in parent.items():
        edges.setdefault(par, set())
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in edges.get(n, ()):
            if state.get(m) == 1:
                fail("dependency cycle: " + " -> ".join(stack + [n, m]))
            elif m in apps and m not in state:
                visit(m, stack + [n])
        state[n] = 2

    for n in apps:
        if n not in state:
            visit(n, [])
    check_argocd_example()
    missing = {"directory", "jinja", "helm", "kustomize", "transform"} - set(renderers.values())
    if missing:
        fail(f"renderers never used: {sorted(missing)}")
    for n in apps:
        deps = ", ".join(apps[n]["spec"].get("dependsOn") or []) or "-"
        print(f"  {n:16} {apps[n]['spec'].get('tier', 'app'):6} {renderers[n]:9} "
              f"parent={parent.get(n, '-'):7} dependsOn: {deps}")
    for n in notes:
        print("note:", n)
    for f in failures:
        print("FAIL:", f)
    print(f"{len(apps)} applications, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
