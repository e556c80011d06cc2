"""Validates Dossier's deployment files. Run by scripts/manifests.sh (which finds kubectl and
the Python tools); prints a short summary and exits non-zero on any problem.

- Every kustomization under deploy/ is rendered (`kubectl kustomize`), and every rendered
  object is checked against a schema: Kubernetes' own kinds against the OpenAPI-derived
  schemas bundled in PyPI's kubernetes-validate (strict: unknown fields are errors), the
  CRD kinds (External Secrets, Flux) against deploy/schemas/<group>/<version>/<Kind>.json.
- Plain YAML is checked too: Kubernetes objects in folders without a kustomization (Flux's
  cluster entry point), deploy/compose.yaml against the Compose Specification and
  .github/workflows/*.yml against GitHub's workflow schema (both vendored in PyPI's
  check-jsonschema). A YAML file under deploy/ that none of these covers is an error, and so
  is a manifest in a kustomization folder that no kustomization includes.
- Workload rules: every container runs as non-root with no privilege escalation, no
  capabilities, a read-only root and resource requests and limits; long-running ones have
  liveness and readiness probes; images carry a tag other than `latest`.
- References inside each whole deployment (the kustomizations nothing else includes):
  Service, PodDisruptionBudget and HorizontalPodAutoscaler targets, ConfigMaps and Secrets
  (or the ExternalSecrets making them), secret stores, Ingress backends, Flux sources, paths,
  image policies, and the image-policy markers in the manifests.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import json
import pathlib
import re
import subprocess
import sys
import time

import jsonschema
import referencing
import yaml
from ruamel.yaml import YAML

K8S_VERSION = "1.32"
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
# Objects that exist outside these files: made by `flux bootstrap`.
EXTERNAL_OBJECTS = {("GitRepository", "flux-system", "flux-system")}


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


def rel(root: pathlib.Path, path: pathlib.Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- schemas --------------------------------------------------------------------------------

class Schemas:
    def __init__(self, root: pathlib.Path) -> None:
        import check_jsonschema
        import kubernetes_validate

        k8s_dir = pathlib.Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
        self.k8s_dir = k8s_dir / f"v{K8S_VERSION}.0-local-strict"
        if not self.k8s_dir.is_dir():
            raise SystemExit(f"kubernetes-validate has no schemas for Kubernetes {K8S_VERSION}")
        from kubernetes_validate.version import __version__ as kv_version

        self.k8s_label = f"kubernetes {K8S_VERSION} (kubernetes-validate {kv_version}, strict)"
        defs = json.loads((self.k8s_dir / "_definitions.json").read_text())
        self.registry = referencing.Registry().with_resource(
            defs["$id"], referencing.Resource.from_contents(defs)
        )
        self.crd_dir = root / "deploy" / "schemas"
        self.vendor_dir = pathlib.Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
        self.cache: dict[str, tuple[jsonschema.protocols.Validator, str] | None] = {}

    def _load(self, path: pathlib.Path, registry=None) -> jsonschema.protocols.Validator:
        schema = json.loads(path.read_text())
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        if registry is not None:
            return cls(schema, registry=registry)
        return cls(schema)

    def for_object(self, api_version: str, kind: str):
        """(validator, label) for a kind, or None when there is no schema for it."""
        key = f"{api_version}/{kind}"
        if key not in self.cache:
            crd = self.crd_dir / api_version / f"{kind}.json"
            if "/" in api_version and crd.is_file():
                self.cache[key] = (self._load(crd), rel(self.crd_dir.parent.parent, crd))
            else:
                group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
                path = self.k8s_dir / f"{kind.lower()}-{group_version}.json"
                # Only real API groups: kubernetes-validate's naming drops the domain, so a
                # CRD group such as example.com/v1 must not match a built-in file by accident.
                builtin = "/" not in api_version or "." not in api_version.split("/")[0] or api_version.split("/")[0].endswith(".k8s.io")
                if builtin and path.is_file():
                    self.cache[key] = (self._load(path, self.registry), self.k8s_label)
                else:
                    self.cache[key] = None
        return self.cache[key]

    def vendor(self, name: str):
        key = f"vendor:{name}"
        if key not in self.cache:
            self.cache[key] = (self._load(self.vendor_dir / f"{name}.json"), f"{name} (check-jsonschema)")
        return self.cache[key]


def schema_errors(validator, document) -> list[str]:
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    out = []
    for error in errors[:6]:
        # For oneOf/anyOf failures the most relevant sub-error says more.
        best = error
        while best.context:
            best = jsonschema.exceptions.best_match(best.context)
        path = ".".join(str(p) for p in best.absolute_path) or "(top)"
        message = best.message if len(best.message) <= 240 else best.message[:240] + "…"
        out.append(f"at {path}: {message}")
    if len(errors) > 6:
        out.append(f"... and {len(errors) - 6} more")
    return out


# --- kustomizations -------------------------------------------------------------------------

def kustomization_file(directory: pathlib.Path) -> pathlib.Path | None:
    for name in KUSTOMIZATION_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


def kustomization_refs(file: pathlib.Path) -> tuple[str, set[pathlib.Path]]:
    """The kind (Kustomization or Component) and every local path the file refers to."""
    data = yaml.safe_load(file.read_text()) or {}
    base = file.parent
    refs: set[pathlib.Path] = set()

    def add(value, keyed: bool = False) -> None:
        if isinstance(value, str) and "://" not in value and not value.startswith("git@"):
            if keyed and "=" in value:  # a generator's `key=path`
                value = value.split("=", 1)[1]
            refs.add((base / value).resolve())

    for field in ("resources", "components", "bases", "crds", "patchesStrategicMerge", "transformers", "generators", "validators"):
        for item in data.get(field) or []:
            add(item)
    for patch in data.get("patches") or []:
        if isinstance(patch, dict):
            add(patch.get("path"))
    for patch in data.get("patchesJson6902") or []:
        if isinstance(patch, dict):
            add(patch.get("path"))
    for generator in (data.get("configMapGenerator") or []) + (data.get("secretGenerator") or []):
        for field in ("files", "envs"):
            for item in generator.get(field) or []:
                add(item, keyed=field == "files")
        add(generator.get("env"))
    openapi = data.get("openapi") or {}
    add(openapi.get("path"))
    return data.get("kind", "Kustomization"), refs


def render(renderer: list[str], directory: pathlib.Path) -> tuple[list[dict] | None, str]:
    proc = subprocess.run(renderer + [str(directory)], capture_output=True, text=True)
    if proc.returncode != 0:
        return None, proc.stderr.strip() or proc.stdout.strip()
    return [d for d in yaml.safe_load_all(proc.stdout) if d], ""


# --- workload and reference rules -----------------------------------------------------------

def pod_spec(obj: dict) -> dict | None:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return (spec.get("template") or {}).get("spec")


def pod_labels(obj: dict) -> dict:
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    return ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}


def check_workload(obj: dict, where: str, problems: Problems) -> None:
    spec = pod_spec(obj)
    if spec is None:
        return
    pod_sc = spec.get("securityContext") or {}
    containers = [("container", c) for c in spec.get("containers") or []]
    containers += [("init container", c) for c in spec.get("initContainers") or []]
    for what, c in containers:
        name = f"{what} {c.get('name')}"
        sc = c.get("securityContext") or {}
        if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
            problems.add(where, f"{name}: runAsNonRoot is not true")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.add(where, f"{name}: no RuntimeDefault seccompProfile")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.add(where, f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.add(where, f"{name}: capabilities do not drop ALL")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.add(where, f"{name}: readOnlyRootFilesystem is not true")
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if resource not in (resources.get(section) or {}):
                    problems.add(where, f"{name}: no {section}.{resource}")
        if what == "container" and obj.get("kind") in LONG_RUNNING:
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in c:
                    problems.add(where, f"{name}: no {probe}")
        image = c.get("image") or ""
        last = image.rsplit("/", 1)[-1]
        if "@" not in image and (":" not in last or last.endswith(":latest")):
            problems.add(where, f"{name}: image {image!r} has no tag, or `latest`")


def selector_matches(selector: dict, labels: dict) -> bool:
    """A Service's plain label map, or a LabelSelector (matchLabels, matchExpressions)."""
    if not selector:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        return all(labels.get(k) == v for k, v in selector.items())
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def check_references(objects: list[dict], where: str, problems: Problems, root: pathlib.Path, external=frozenset()) -> int:
    """Checks that what the objects name exists among them. Returns how many were checked."""
    checked = 0
    index = {}
    for o in objects:
        meta = o.get("metadata") or {}
        index[(o.get("kind"), meta.get("namespace"), meta.get("name"))] = o

    def exists(kind, ns, name) -> bool:
        # Objects without a namespace (cluster-scoped ones) match whatever namespace is asked.
        return (kind, ns, name) in index or (kind, ns, name) in external or (kind, None, name) in index

    def ns_of(o):
        return (o.get("metadata") or {}).get("namespace")

    secrets = {(ns_of(o), o["metadata"]["name"]) for o in objects if o.get("kind") == "Secret"}
    for o in objects:
        if o.get("kind") == "ExternalSecret":
            target = ((o.get("spec") or {}).get("target") or {}).get("name") or o["metadata"]["name"]
            secrets.add((ns_of(o), target))
    workloads = [o for o in objects if o.get("kind") in WORKLOAD_KINDS]

    for o in objects:
        kind, meta, spec = o.get("kind"), o.get("metadata") or {}, o.get("spec") or {}
        ns, name = meta.get("namespace"), meta.get("name")
        label = f"{where}: {kind} {ns + '/' if ns else ''}{name}"
        if kind == "Service" and spec.get("selector"):
            checked += 1
            if not any(ns_of(w) == ns and selector_matches(spec["selector"], pod_labels(w)) for w in workloads):
                problems.items.append(f"{label}: selector {spec['selector']} matches no pod template")
        if kind == "PodDisruptionBudget":
            checked += 1
            if not any(ns_of(w) == ns and selector_matches(spec.get("selector") or {}, pod_labels(w)) for w in workloads):
                problems.items.append(f"{label}: selector matches no pod template")
        if kind == "HorizontalPodAutoscaler":
            checked += 1
            target = spec.get("scaleTargetRef") or {}
            if not exists(target.get("kind"), ns, target.get("name")):
                problems.items.append(f"{label}: scale target {target.get('kind')} {target.get('name')} does not exist")
        if kind in WORKLOAD_KINDS:
            pspec = pod_spec(o) or {}
            for c in (pspec.get("containers") or []) + (pspec.get("initContainers") or []):
                refs = []
                for source in c.get("envFrom") or []:
                    if "configMapRef" in source:
                        refs.append(("ConfigMap", source["configMapRef"]))
                    if "secretRef" in source:
                        refs.append(("Secret", source["secretRef"]))
                for env in c.get("env") or []:
                    value_from = env.get("valueFrom") or {}
                    if "configMapKeyRef" in value_from:
                        refs.append(("ConfigMap", value_from["configMapKeyRef"]))
                    if "secretKeyRef" in value_from:
                        refs.append(("Secret", value_from["secretKeyRef"]))
                for volume in pspec.get("volumes") or []:
                    if "configMap" in volume:
                        refs.append(("ConfigMap", volume["configMap"]))
                    if "secret" in volume:
                        refs.append(("Secret", {"name": volume["secret"].get("secretName"), "optional": volume["secret"].get("optional")}))
                    if "persistentVolumeClaim" in volume:
                        refs.append(("PersistentVolumeClaim", {"name": volume["persistentVolumeClaim"].get("claimName")}))
                for ref_kind, ref in refs:
                    if ref.get("optional"):
                        continue
                    checked += 1
                    if ref_kind == "Secret":
                        ok = (ns, ref.get("name")) in secrets
                    else:
                        ok = exists(ref_kind, ns, ref.get("name"))
                    if not ok:
                        problems.items.append(f"{label}: container {c.get('name')} uses {ref_kind} {ref.get('name')}, which nothing here makes")
        if kind == "ExternalSecret":
            checked += 1
            store = spec.get("secretStoreRef") or {}
            store_kind = store.get("kind", "SecretStore")
            store_ns = None if store_kind == "ClusterSecretStore" else ns
            if not exists(store_kind, store_ns, store.get("name")):
                problems.items.append(f"{label}: {store_kind} {store.get('name')} does not exist")
        if kind == "Ingress":
            for rule in spec.get("rules") or []:
                for path in ((rule.get("http") or {}).get("paths")) or []:
                    service = ((path.get("backend") or {}).get("service")) or {}
                    checked += 1
                    svc = index.get(("Service", ns, service.get("name")))
                    if svc is None:
                        problems.items.append(f"{label}: backend Service {service.get('name')} does not exist")
                        continue
                    port = service.get("port") or {}
                    ports = (svc.get("spec") or {}).get("ports") or []
                    if not any(p.get("name") == port.get("name") if "name" in port else p.get("port") == port.get("number") for p in ports):
                        problems.items.append(f"{label}: Service {service.get('name')} has no port {port}")
        if kind in ("Kustomization", "ImageUpdateAutomation") and o.get("apiVersion", "").startswith(("kustomize.toolkit.fluxcd.io", "image.toolkit.fluxcd.io")):
            checked += 1
            source = spec.get("sourceRef") or {}
            if not exists(source.get("kind"), source.get("namespace", ns), source.get("name")):
                problems.items.append(f"{label}: source {source.get('kind')} {source.get('name')} does not exist")
            for dep in spec.get("dependsOn") or []:
                checked += 1
                if not exists("Kustomization", dep.get("namespace", ns), dep.get("name")):
                    problems.items.append(f"{label}: depends on Kustomization {dep.get('name')}, which does not exist")
            path = spec.get("path") or (spec.get("update") or {}).get("path")
            if path:
                checked += 1
                target = (root / path).resolve()
                if not target.is_dir():
                    problems.items.append(f"{label}: path {path} is not a folder of this repository")
        if kind == "ImagePolicy":
            checked += 1
            ref = spec.get("imageRepositoryRef") or {}
            if not exists("ImageRepository", ref.get("namespace", ns), ref.get("name")):
                problems.items.append(f"{label}: ImageRepository {ref.get('name')} does not exist")
    return checked


MARKER = re.compile(r'image:\s*(\S+)\s*#\s*(\{"\$imagepolicy":\s*"([^"]+)"\})')


def check_markers(root: pathlib.Path, flux_objects: list[dict], problems: Problems) -> int:
    """Every image-policy marker names an ImagePolicy whose repository is the marked image."""
    policies = {}
    repos = {}
    for o in flux_objects:
        meta = o.get("metadata") or {}
        key = f"{meta.get('namespace')}:{meta.get('name')}"
        if o.get("kind") == "ImagePolicy":
            policies[key] = o
        if o.get("kind") == "ImageRepository":
            repos[key] = (o.get("spec") or {}).get("image")
    count = 0
    for path in sorted((root / "deploy" / "k8s").rglob("*.y*ml")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "$imagepolicy" not in line:
                continue
            where = f"{rel(root, path)}:{number}"
            match = MARKER.search(line)
            if not match:
                problems.add(where, "an $imagepolicy marker not on an `image: <repository>:<tag>` line")
                continue
            count += 1
            image, _, policy_ref = match.groups()
            policy_key = ":".join(policy_ref.split(":")[:2])
            policy = policies.get(policy_key)
            if policy is None:
                problems.add(where, f"marker names ImagePolicy {policy_key}, which deploy/flux does not define")
                continue
            repo_ref = (policy.get("spec") or {}).get("imageRepositoryRef") or {}
            repo_key = f"{repo_ref.get('namespace', policy['metadata'].get('namespace'))}:{repo_ref.get('name')}"
            repository, _, tag = image.rpartition(":")
            if repos.get(repo_key) != repository:
                problems.add(where, f"image {repository} is not ImagePolicy {policy_key}'s repository ({repos.get(repo_key)})")
            pattern = ((policy.get("spec") or {}).get("filterTags") or {}).get("pattern")
            if pattern and not re.match(pattern, tag):
                problems.add(where, f"tag {tag} does not match ImagePolicy {policy_key}'s pattern {pattern}")
    return count


# --- main -----------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=str(pathlib.Path(__file__).resolve().parent.parent))
    parser.add_argument("--renderer", required=True, help="e.g. 'kubectl kustomize'")
    parser.add_argument("--renderer-label", default="")
    args = parser.parse_args()
    root = pathlib.Path(args.root).resolve()
    renderer = args.renderer.split()
    started = time.monotonic()
    problems = Problems()
    schemas = Schemas(root)
    deploy = (root / "deploy").resolve()

    # Kustomizations, what they include, and the ones nothing includes (whole deployments).
    kdirs: dict[pathlib.Path, str] = {}
    referenced: set[pathlib.Path] = set()
    for file in sorted(p for name in KUSTOMIZATION_NAMES for p in deploy.rglob(name)):
        kind, refs = kustomization_refs(file)
        kdirs[file.parent.resolve()] = kind
        referenced |= refs
        for ref in refs:
            if not ref.exists():
                problems.add(rel(root, file), f"refers to {rel(root, ref)}, which does not exist")
    roots = [d for d, kind in kdirs.items() if d not in referenced and kind != "Component"]
    to_render = sorted(d for d, kind in kdirs.items() if kind != "Component")

    # Every YAML file under deploy/ must be covered by something below.
    plain_manifests: list[pathlib.Path] = []
    compose_files: list[pathlib.Path] = []
    for path in sorted(deploy.rglob("*.y*ml")):
        if path.suffix not in (".yaml", ".yml"):
            continue
        folder = path.parent.resolve()
        if path.name in KUSTOMIZATION_NAMES or path.resolve() in referenced:
            continue
        if path.name in ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"):
            compose_files.append(path)
        elif kustomization_file(folder) is None and any(
            folder == d or d in folder.parents for d in (deploy / "k8s", deploy / "flux")
        ):
            plain_manifests.append(path)
        elif kustomization_file(folder) is not None:
            problems.add(rel(root, path), "no kustomization includes it (it would be neither validated nor deployed)")
        else:
            problems.add(rel(root, path), "not a manifest, compose file or kustomization: nothing validates it")

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        rendered = dict(zip(to_render, pool.map(lambda d: render(renderer, d), to_render)))

    per_kind: dict[tuple[str, str], set] = collections.defaultdict(set)
    validations = 0
    seen_errors: set[str] = set()

    def validate_object(obj: dict, where: str, count: bool) -> None:
        nonlocal validations
        if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
            problems.add(where, "a document without apiVersion and kind")
            return
        api_version, kind = obj["apiVersion"], obj["kind"]
        meta = obj.get("metadata") or {}
        name = f"{kind} {meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta.get('name')}"
        found = schemas.for_object(api_version, kind)
        if found is None:
            problems.add(where, f"{name}: no schema for {api_version} {kind} (add deploy/schemas/{api_version}/{kind}.json)")
            return
        validator, label = found
        validations += 1
        if count:
            per_kind[(kind, label)].add((meta.get("namespace"), meta.get("name")))
        found_here = [f"{name}: {error}" for error in schema_errors(validator, obj)]
        if kind in WORKLOAD_KINDS:
            rules = Problems()
            check_workload(obj, name, rules)
            found_here += rules.items
        # An object rendered by several kustomizations reports each problem once.
        for message in found_here:
            if message not in seen_errors:
                seen_errors.add(message)
                problems.add(where, message)

    render_lines = []
    # Deepest folders first, so a problem is reported under the kustomization closest to it.
    for directory, (objects, error) in sorted(rendered.items(), key=lambda item: (-len(item[0].parts), item[0])):
        where = rel(root, directory)
        if objects is None:
            problems.add(where, f"does not render: {error[-2000:]}")
            continue
        render_lines.append(f"  {where:<44} {len(objects):>3} object{'s' if len(objects) != 1 else ''}")
        for obj in objects:
            validate_object(obj, where, count=directory in roots)

    plain_objects: list[dict] = []
    plain_lines = []
    for path in plain_manifests:
        where = rel(root, path)
        try:
            docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as error:
            problems.add(where, f"not YAML: {error}")
            continue
        for doc in docs:
            validate_object(doc, where, count=True)
        plain_objects += docs
        plain_lines.append(f"  {where} ({len(docs)} object{'s' if len(docs) != 1 else ''})")

    ruamel = YAML(typ="safe", pure=True)
    for path, schema_name in [(p, "compose-spec") for p in compose_files] + [
        (p, "github-workflows") for p in sorted((root / ".github" / "workflows").glob("*.y*ml"))
    ]:
        where = rel(root, path)
        try:
            document = ruamel.load(path.read_text())
        except Exception as error:  # ruamel's errors have no common base worth naming
            problems.add(where, f"not YAML: {error}")
            continue
        validator, label = schemas.vendor(schema_name)
        validations += 1
        for error in schema_errors(validator, document):
            problems.add(where, error)
        plain_lines.append(f"  {where} ({label})")

    # References within each whole deployment, and the Flux objects with what they point at.
    references = 0
    flux_objects = [o for d, (objs, _) in rendered.items() if objs and deploy / "flux" in d.parents for o in objs]
    for directory in roots:
        objects = rendered.get(directory, (None, ""))[0]
        if objects:
            references += check_references(objects, rel(root, directory), problems, root, EXTERNAL_OBJECTS)
    if plain_objects:
        external = set(EXTERNAL_OBJECTS)
        for o in flux_objects:
            m = o.get("metadata") or {}
            external.add((o.get("kind"), m.get("namespace"), m.get("name")))
        references += check_references(plain_objects, "plain manifests", problems, root, frozenset(external))
    markers = check_markers(root, flux_objects, problems)
    references += markers

    elapsed = time.monotonic() - started
    out = sys.stdout
    print(f"renderer: {args.renderer_label or args.renderer}", file=out)
    print(f"rendered {len(render_lines)} of {len(to_render)} kustomizations "
          f"({len(roots)} whole deployments: {', '.join(rel(root, d) for d in sorted(roots))}):", file=out)
    print("\n".join(sorted(render_lines)), file=out)
    if plain_lines:
        print("plain files:\n" + "\n".join(plain_lines), file=out)
    deployed = sum(len(names) for names in per_kind.values())
    print(f"schema checks: {validations} documents (every render); the {deployed} objects deployed, by kind:", file=out)
    for (kind, label), names in sorted(per_kind.items()):
        print(f"  {kind:<24} {len(names):>3}   {label}", file=out)
    print(f"references checked: {references} (image-policy markers: {markers})", file=out)
    if problems.items:
        print(f"\n{len(problems.items)} problem(s):", file=sys.stderr)
        for item in problems.items:
            print(f"  - {item}", file=sys.stderr)
        print(f"manifests: FAILED in {elapsed:.1f}s", file=sys.stderr)
        return 1
    print(f"manifests: all valid in {elapsed:.1f}s", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
