"""What an offline run looks like on paper: the resource tree, ``plan.json`` and the Kubernetes YAML.

The same run always gives byte-identical files, so two renders diff cleanly in
a pull request.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from mleks.testing.harness import RenderResult
from mleks.testing.mocks import Registration

Summary = Callable[[dict[str, Any]], str]


def _join(values: Any) -> str:
    return ",".join(str(v) for v in values or [])


def _node_group(i: dict[str, Any]) -> str:
    sc = i.get("scalingConfig", {})
    taints = _join(f"{t['key']}={t.get('value', '')}:{t['effect']}" for t in i.get("taints") or [])
    role = (i.get("labels") or {}).get("role", "?")
    types = _join(i.get("instanceTypes")) or "(from launch template)"
    return f"role={role} {types} ami={i.get('amiType')} {i.get('capacityType')} size={sc.get('minSize')}..{sc.get('maxSize')} taints=[{taints}]"


def _cluster(i: dict[str, Any]) -> str:
    public = _join(i.get("publicAccessCidrs")) if i.get("endpointPublicAccess") else "off"
    return (
        f"k8s={i.get('version')} auth={i.get('authenticationMode')} private-endpoint={i.get('endpointPrivateAccess')} "
        f"public-endpoint={public} logs={_join(i.get('enabledClusterLogTypes'))} "
        f"secrets-kms={'yes' if i.get('encryptionConfigKeyArn') else 'no'} oidc={i.get('createOidcProvider')}"
    )


def _launch_template(i: dict[str, Any]) -> str:
    md = i.get("metadataOptions", {})
    ebs = (i.get("blockDeviceMappings") or [{}])[0].get("ebs", {})
    efa = sum(n.get("interfaceType") in ("efa", "efa-only") for n in i.get("networkInterfaces") or [])
    return (
        f"imds-tokens={md.get('httpTokens')} hop-limit={md.get('httpPutResponseHopLimit')} "
        f"root={ebs.get('volumeSize')}GiB {ebs.get('volumeType')} {ebs.get('throughput')}MiB/s encrypted={ebs.get('encrypted')}"
        + (f" efa-interfaces={efa}" if efa else "")
    )


def _kube(i: dict[str, Any]) -> str:
    meta = i.get("metadata") or {}
    ns = meta.get("namespace")
    text = f"{i.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"
    # Workloads show their image, so a reviewer sees what a resolved DLC tag became.
    containers = (((i.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    if containers:
        text += f" image={containers[0].get('image')}"
    return text


SUMMARIES: dict[str, Summary] = {
    "eks:index:Cluster": _cluster,
    "aws:eks/nodeGroup:NodeGroup": _node_group,
    "aws:ec2/launchTemplate:LaunchTemplate": _launch_template,
    "aws:ec2/vpc:Vpc": lambda i: f"cidr={i.get('cidrBlock')}",
    "aws:ec2/subnet:Subnet": lambda i: f"{i.get('cidrBlock')} {i.get('availabilityZone')}",
    "aws:kms/key:Key": lambda i: f"rotation={i.get('enableKeyRotation')}",
    "aws:cloudwatch/logGroup:LogGroup": lambda i: f"{i.get('name')} retention={i.get('retentionInDays')}d",
    "aws:iam/role:Role": lambda i: str(i.get("description", "")),
    "aws:autoscaling/tag:Tag": lambda i: f"{(i.get('tag') or {}).get('key')}={(i.get('tag') or {}).get('value')}",
    "aws:eks/addon:Addon": lambda i: f"{i.get('addonName')} {i.get('addonVersion') or ''}".strip(),
}


def summary(reg: Registration) -> str:
    if reg.type.startswith("kubernetes:") and reg.custom:
        return _kube(reg.inputs)
    fn = SUMMARIES.get(reg.type)
    text = fn(reg.inputs) if fn else ""
    if reg.ignore_changes:
        text += f" ignore-changes={_join(reg.ignore_changes)}"
    return text.strip()


def tree_lines(result: RenderResult) -> list[str]:
    """The resource tree, children under parents, siblings sorted by type then name."""
    by_parent: dict[str, list[Registration]] = {}
    known = {r.urn for r in result.resources}
    for reg in result.resources:
        parent = reg.parent if reg.parent in known else ""
        by_parent.setdefault(parent, []).append(reg)
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for reg in sorted(by_parent.get(parent, []), key=lambda r: (r.type, r.name)):
            detail = summary(reg)
            lines.append(f"{'  ' * depth}{reg.type}  {reg.name}" + (f"  [{detail}]" if detail else ""))
            walk(reg.urn, depth + 1)

    walk("", 0)
    return lines


def plan_document(result: RenderResult) -> dict[str, Any]:
    resources = []
    for reg in result.resources:
        entry: dict[str, Any] = {
            "urn": reg.urn,
            "type": reg.type,
            "name": reg.name,
            "parent": reg.parent,
            "custom": reg.custom,
            "inputs": reg.inputs,
            "dependencies": reg.dependencies,
        }
        options = {
            "provider": reg.provider,
            "ignoreChanges": reg.ignore_changes,
            "replaceOnChanges": reg.replace_on_changes,
            "deleteBeforeReplace": reg.delete_before_replace,
            "protect": reg.protect,
            "retainOnDelete": reg.retain_on_delete,
            "aliases": reg.aliases,
            "customTimeouts": reg.custom_timeouts,
        }
        entry["options"] = {k: v for k, v in options.items() if v}
        resources.append(entry)
    return {"stack": result.stack, "region": result.region, "resourceCount": len(resources), "outputs": result.outputs, "resources": resources}


def kube_documents(result: RenderResult) -> dict[str, list[dict[str, Any]]]:
    """Kubernetes manifests grouped by the cluster they are applied to."""
    out: dict[str, list[dict[str, Any]]] = {}
    for reg, obj in result.kube_objects():
        cluster = result.cluster_of(reg)
        key = cluster.name if cluster else "unknown-cluster"
        out.setdefault(key, []).append(obj)
    for objs in out.values():
        objs.sort(key=lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]))
    return out


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """libyaml's emitter where PyYAML was built with it (5x the pure-Python one), else the pure-Python one."""


class _PythonDumper(yaml.SafeDumper):
    """The pure-Python emitter, for machines whose PyYAML lacks libyaml (and the test that both agree)."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # A multi-line string (a script, a config file) as a literal block, as it reads in an editor;
    # the emitter falls back to quotes where a block cannot hold it exactly (trailing spaces).
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


for _dumper in (_Dumper, _PythonDumper):
    _dumper.add_representer(str, _text)


def manifest_yaml(objs: list[dict[str, Any]], *, pure_python: bool = False) -> str:
    """The Kubernetes manifests of one cluster as a YAML stream.

    Keys sorted, block style, multi-line strings as literal blocks and no line folding: the two
    emitters write the same bytes that way (a test checks), so a render does not depend on how
    PyYAML was built.
    """
    dumper = _PythonDumper if pure_python else _Dumper
    return yaml.dump_all(objs, Dumper=dumper, sort_keys=True, default_flow_style=False, width=2**30, allow_unicode=False)


def write(result: RenderResult, out_dir: Path, *, spot_discount: float | None = None) -> list[Path]:
    """Write ``plan.json``, ``cost.json``, ``start-times.json`` and one YAML file per cluster under ``out_dir/<stack>``."""
    from mleks.review import startup
    from mleks.review.cost import estimate

    target = out_dir / result.stack
    kube_dir = target / "kubernetes"
    kube_dir.mkdir(parents=True, exist_ok=True)
    for stale in kube_dir.glob("*.yaml"):
        stale.unlink()
    written = []
    plan_path = target / "plan.json"
    plan = plan_document(result)
    plan_path.write_text(json.dumps(plan, indent=2, sort_keys=True) + "\n")
    written.append(plan_path)
    cost_path = target / "cost.json"
    cost_path.write_text(json.dumps(estimate(plan, spot_discount=spot_discount).document(), indent=1, sort_keys=True) + "\n")
    written.append(cost_path)
    start_path = target / "start-times.json"
    start_path.write_text(json.dumps(startup.document(startup.estimate(plan)), indent=1, sort_keys=True) + "\n")
    written.append(start_path)
    for cluster, objs in sorted(kube_documents(result).items()):
        path = kube_dir / f"{cluster}.yaml"
        path.write_text(manifest_yaml(objs))
        written.append(path)
    return written
