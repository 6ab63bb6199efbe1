"""What a planned create, delete, replace or update does, in a reviewer's words, and how urgent it is.

Each sentence says what happens to pods, volumes, data and cost for that kind of resource, from
how Kubernetes and AWS treat it (the Kubernetes docs on StatefulSet claim retention and
persistent volume reclaim policies, and the EKS and FSx API references on deleting add-ons and
file systems).  Pure functions over plan entries: no Pulumi import.
"""

from __future__ import annotations

from typing import Any

# Risk tiers, most urgent first; the Markdown groups by them.
DATA_OR_NODES, SECURITY, JOBS, OTHER_REPLACE, UNKNOWN, ROUTINE = range(6)
TIER_TITLES = {
    DATA_OR_NODES: "Needs attention: clusters, nodes, cluster add-ons and data",
    SECURITY: "Security: who can reach or do what",
    JOBS: "Jobs that will run",
    OTHER_REPLACE: "Other replacements and deletions",
    UNKNOWN: "Not forecast: check `pulumi preview`",
    ROUTINE: "Routine changes",
}

# Types whose deletion or replacement loses data, nodes or the cluster itself.
CRITICAL_TYPES = {
    "eks:index:Cluster": "cluster",
    "aws:eks/nodeGroup:NodeGroup": "node group",
    "aws:kms/key:Key": "KMS key",
    "aws:ebs/volume:Volume": "EBS volume",
    "kubernetes:core/v1:PersistentVolumeClaim": "volume claim",
    "kubernetes:apps/v1:StatefulSet": "StatefulSet",
    "aws:cloudwatch/logGroup:LogGroup": "log group",
    "aws:ec2/vpc:Vpc": "VPC",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:fsx/lustreFileSystem:LustreFileSystem": "FSx file system",
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": "FSx link to S3",
    "kubernetes:core/v1:PersistentVolume": "persistent volume",
    "kubernetes:karpenter.sh/v1:NodePool": "Karpenter pool",
    "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass": "Karpenter node class",
}

# Cluster-wide pieces that other workloads rely on: removing one breaks what uses it, so it needs attention too.
CLUSTER_LEVEL = {
    "aws:eks/addon:Addon": "EKS add-on",
    "kubernetes:storage.k8s.io/v1:StorageClass": "StorageClass",
    "kubernetes:core/v1:Namespace": "namespace",
    "kubernetes:helm.sh/v3:Release": "Helm release",
    "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition": "CustomResourceDefinition",
}


def kind_of(resource: dict[str, Any]) -> str | None:
    kind = (resource.get("inputs") or {}).get("kind")
    return kind if isinstance(kind, str) else None


def label(resource: dict[str, Any]) -> str:
    """``namespace/name`` of a Kubernetes object, else the resource's Pulumi name."""
    inputs = resource.get("inputs") or {}
    meta = inputs.get("metadata") if isinstance(inputs.get("metadata"), dict) else None
    if meta and meta.get("name"):
        return f"{meta.get('namespace') + '/' if meta.get('namespace') else ''}{meta['name']}"
    return str(resource.get("name"))


def noun(r: dict[str, Any]) -> str:
    kind = kind_of(r)
    if r["type"].startswith("kubernetes:") and kind:
        return kind
    return r["type"].rsplit(":", 1)[-1]


def retained_on_delete(r: dict[str, Any]) -> bool:
    return bool((r.get("options") or {}).get("retainOnDelete"))


def protected(r: dict[str, Any]) -> bool:
    return bool((r.get("options") or {}).get("protect"))


def storage_class_policy(plan_index: dict[str, dict[str, Any]], name: str) -> str:
    """The reclaim policy of StorageClass ``name`` in the plan; Kubernetes's default, ``Delete``, when absent."""
    for r in plan_index.values():
        if r["type"] == "kubernetes:storage.k8s.io/v1:StorageClass" and ((r.get("inputs") or {}).get("metadata") or {}).get("name") == name:
            return str((r.get("inputs") or {}).get("reclaimPolicy") or "Delete")
    return "Delete"


def _volume_fate(plan_index: dict[str, dict[str, Any]], storage_class: str) -> str:
    if storage_class_policy(plan_index, storage_class) == "Retain":
        return f"its volume stays (StorageClass `{storage_class}` retains released volumes) and keeps costing until you delete it"
    return f"its volume and the data on it are deleted (StorageClass `{storage_class or '(default)'}` deletes released volumes)"


# Types whose every change alters who may do or reach what: permissions, trust, network rules, RBAC.
ACCESS_TYPES = {
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policy:Policy",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    "aws:eks/accessEntry:AccessEntry",
    "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
    "kubernetes:networking.k8s.io/v1:NetworkPolicy",
    "kubernetes:rbac.authorization.k8s.io/v1:Role",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding",
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
}
# Inputs of other types that do the same: an IAM role's trust and policies, a key's policy, which IAM
# role a pod assumes (IRSA), a Service's exposure, the control plane's audit logs.
ACCESS_PATHS = {
    "aws:iam/role:Role": ("assumeRolePolicy", "managedPolicyArns", "inlinePolicies"),
    "aws:kms/key:Key": ("policy",),
    "kubernetes:core/v1:ServiceAccount": ("metadata.annotations",),
    "kubernetes:core/v1:Service": ("spec.type", "spec.loadBalancerSourceRanges", "metadata.annotations"),
    "eks:index:Cluster": ("enabledClusterLogTypes",),
}


def touches_access(r: dict[str, Any], paths: tuple[str, ...] | None) -> bool:
    """Whether a change of ``r`` (``paths`` changed; ``None`` for a creation or deletion) alters permissions or exposure."""
    t = r["type"]
    if t in ACCESS_TYPES:
        return paths is None or any(not p.startswith(("tags", "metadata.labels")) for p in paths)
    if paths is None:
        # A new or removed load balancer is exposure whatever else changes.
        return t == "kubernetes:core/v1:Service" and ((r.get("inputs") or {}).get("spec") or {}).get("type") == "LoadBalancer"
    watched = ACCESS_PATHS.get(t, ())
    return any(p == w or p.startswith(w + ".") for p in paths for w in watched)


def tier(r: dict[str, Any], action: str) -> int:
    t = r["type"]
    if t == "kubernetes:batch/v1:Job" and action in ("create", "replace"):
        return JOBS
    if action == "create":
        return ROUTINE
    if t in CRITICAL_TYPES or t in CLUSTER_LEVEL:
        return DATA_OR_NODES
    return OTHER_REPLACE


def deletion(r: dict[str, Any], plan_index: dict[str, dict[str, Any]]) -> str:
    """What deleting ``r`` (an entry of the base plan) does; ``plan_index`` is that plan by URN."""
    name, t = label(r), r["type"]
    what = CRITICAL_TYPES.get(t) or CLUSTER_LEVEL.get(t) or noun(r)
    if retained_on_delete(r):
        return (
            f"removes {what} `{name}` from the stack only (retained on delete): Pulumi forgets it, "
            "but it and its data stay, and whatever it costs goes on until you delete it by hand"
        )
    inputs = r.get("inputs") or {}
    spec = inputs.get("spec") or {}
    text = _deletion_text(r, t, name, what, inputs, spec, plan_index)
    if protected(r):
        text += " (protected: `pulumi up` stops until protection is removed)"
    return text


def _deletion_text(r: dict[str, Any], t: str, name: str, what: str, inputs: dict[str, Any], spec: dict[str, Any], plan_index: dict[str, dict[str, Any]]) -> str:
    if t == "eks:index:Cluster":
        return f"deletes cluster `{name}`: the control plane and everything on it go"
    if t == "aws:eks/nodeGroup:NodeGroup":
        return f"deletes node group `{name}`: its nodes are drained and terminated; running jobs are killed"
    if t == "kubernetes:batch/v1:Job":
        return f"deletes Job `{name}`: its pods are deleted, so a running job stops and loses what it has not checkpointed"
    if t == "kubernetes:apps/v1:StatefulSet":
        retention = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted", "Retain")
        classes = sorted({str((c.get("spec") or {}).get("storageClassName") or "") for c in spec.get("volumeClaimTemplates") or []})
        if not classes:
            return f"deletes StatefulSet `{name}`: its pods are deleted"
        if retention == "Delete":
            fates = "; ".join(_volume_fate(plan_index, c) for c in classes)
            return f"deletes StatefulSet `{name}`: its pods are deleted, and its claims too (whenDeleted: Delete): {fates}"
        retaining = [c for c in classes if storage_class_policy(plan_index, c) == "Retain"]
        then = (
            f", and then the released PersistentVolumes and their EBS volumes (StorageClass {', '.join(f'`{c}`' for c in retaining)} retains them)"
            if retaining
            else ""
        )
        return (
            f"deletes StatefulSet `{name}`: its pods are deleted; the claims of its volumeClaimTemplates stay "
            f"(whenDeleted: Retain), so their volumes and data stay and keep costing until you delete the claims{then}"
        )
    if t in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:ReplicaSet"):
        return f"deletes {noun(r)} `{name}`: its pods are deleted, so what it serves stops"
    if t == "kubernetes:apps/v1:DaemonSet":
        return f"deletes DaemonSet `{name}`: its pod on every node is deleted"
    if t == "kubernetes:core/v1:Service":
        lb = " and its load balancer is deleted" if spec.get("type") == "LoadBalancer" else ""
        return f"deletes Service `{name}`: its address goes{lb}; clients of it fail"
    if t == "kubernetes:core/v1:PersistentVolumeClaim":
        if spec.get("volumeName"):
            return (
                f"deletes volume claim `{name}`: pods can no longer mount persistent volume `{spec['volumeName']}`, which decides what happens to its storage"
            )
        return f"deletes volume claim `{name}`: " + _volume_fate(plan_index, str(spec.get("storageClassName") or ""))
    if t == "kubernetes:core/v1:PersistentVolume":
        if spec.get("persistentVolumeReclaimPolicy", "Retain") == "Retain":
            return f"deletes persistent volume `{name}`: the Kubernetes object only; with reclaim policy Retain its storage and data stay"
        return f"deletes persistent volume `{name}`: its storage and data are deleted (reclaim policy {spec.get('persistentVolumeReclaimPolicy')})"
    if t == "kubernetes:storage.k8s.io/v1:StorageClass":
        return f"deletes StorageClass `{name}`: new claims that name it stay Pending; volumes it already made keep working"
    if t == "kubernetes:core/v1:Namespace":
        return f"deletes namespace `{name}` and every object in it"
    if t == "aws:eks/addon:Addon":
        addon = inputs.get("addonName") or name
        kept = (
            " (preserve: its Kubernetes objects are left running, unmanaged)"
            if inputs.get("preserve")
            else ": its controllers and DaemonSets are deleted, and what relies on it stops working"
        )
        return f"removes EKS add-on `{addon}` from the cluster{kept}" + _addon_consequence(str(addon))
    if t == "kubernetes:helm.sh/v3:Release":
        return f"uninstalls Helm release `{name}`: every object its chart made is deleted"
    if t == "kubernetes:karpenter.sh/v1:NodePool":
        return (
            f"deletes Karpenter pool `{name}`: Karpenter drains and terminates every node it launched for it (their pods go Pending"
            " unless another pool or group takes them), and Pulumi waits until the instances are gone"
        )
    if t == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass":
        return f"deletes Karpenter node class `{name}`, once no node launched from it is left, and its instance profile"
    if t == "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition":
        return f"deletes CustomResourceDefinition `{name}`: every custom resource of that kind is deleted with it"
    if t == "kubernetes:core/v1:Secret":
        return f"deletes Secret `{name}`: pods that mount or read it fail to start"
    if t == "kubernetes:core/v1:ConfigMap":
        return f"deletes ConfigMap `{name}`: pods that mount it fail to start"
    if t == "aws:iam/role:Role":
        return f"deletes IAM role `{name}`: whatever runs as it loses its AWS access"
    if t == "aws:kms/key:Key":
        return f"schedules KMS key `{name}` for deletion: once it is gone, whatever it encrypted cannot be read"
    if t == "aws:fsx/lustreFileSystem:LustreFileSystem":
        return f"deletes FSx file system `{name}`: every file on it is deleted; what was not exported to S3 is lost"
    if t == "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation":
        return f"deletes FSx link to S3 `{name}`: the file system no longer imports from or exports to its S3 prefix"
    if t == "aws:cloudwatch/logGroup:LogGroup":
        return f"deletes log group `{name}`: its logs are deleted"
    if t == "aws:ec2/natGateway:NatGateway":
        return f"deletes NAT gateway `{name}`: its private subnets lose their way to the internet"
    if t == "aws:autoscaling/tag:Tag":
        tag = inputs.get("tag") or {}
        if not tag.get("propagateAtLaunch"):
            return f"deletes Auto Scaling group tag `{name}`: cluster-autoscaler no longer reads it when it builds a node for the group at zero"
        return (
            f"deletes Auto Scaling group tag `{name}`: running nodes keep it, and nodes launched later still get the value"
            " the launch template was made with, if it had this key (its tags are fixed when the group is made)"
        )
    if t in CRITICAL_TYPES:
        return f"deletes {what} `{name}`: data it holds or protects may be lost"
    return f"deletes {what} `{name}`"


def _addon_consequence(addon: str) -> str:
    if addon == "aws-ebs-csi-driver":
        return ": no EBS claim can be provisioned, attached or detached any more, so a notebook pod that moves stays Pending"
    if addon == "aws-fsx-csi-driver":
        return ": pods that mount an FSx dataset cannot start"
    if addon == "vpc-cni":
        return ": no new pod gets an address"
    return ""


# pulumi-eks Cluster inputs that change who can reach or administer the cluster, or the control plane itself.
CLUSTER_ACCESS = {
    "version",
    "accessEntries",
    "authenticationMode",
    "publicAccessCidrs",
    "endpointPublicAccess",
    "endpointPrivateAccess",
    "deletionProtection",
}


def gpu_quotas(r: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """A ClusterQueue's (nominal, borrowing limit) GPUs per flavor."""
    out = {}
    for rg in (((r.get("inputs") or {}).get("spec") or {}).get("resourceGroups")) or []:
        for flavor in rg.get("flavors") or []:
            gpu = next((x for x in flavor.get("resources") or [] if x.get("name") == "nvidia.com/gpu"), None)
            if gpu is not None:
                out[str(flavor.get("name"))] = (int(gpu.get("nominalQuota") or 0), int(gpu.get("borrowingLimit") or 0))
    return out


def _budget(r: dict[str, Any]) -> str:
    """How many nodes a NodePool's first disruption budget lets Karpenter replace at once, in words."""
    budgets = ((((r.get("inputs") or {}).get("spec") or {}).get("disruption") or {}).get("budgets")) or [{"nodes": "10%"}]
    nodes = str(budgets[0].get("nodes", "10%"))
    return "one node" if nodes == "1" else f"{nodes} of its nodes"


def _minor(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def cluster_update(r: dict[str, Any], name: str, touched: set[str], before: str = "") -> str:
    """What an in-place change of the control plane's settings does, field by field (``before``: the old version)."""
    inputs = r.get("inputs") or {}
    parts = []
    if "version" in touched:
        after = str(inputs.get("version"))
        if before and _minor(after) < _minor(before):
            parts.append(f"asks for a downgrade of the control plane from {before} to {after}: EKS refuses it, and `pulumi up` fails")
        else:
            parts.append(f"upgrades the control plane's Kubernetes version {before or '?'} → {after}: an upgrade cannot be undone")
    if touched & {"accessEntries", "authenticationMode"}:
        parts.append("changes who may administer the cluster (access entries): read the entries below")
    if touched & {"publicAccessCidrs", "endpointPublicAccess", "endpointPrivateAccess"}:
        public = inputs.get("endpointPublicAccess")
        cidrs = inputs.get("publicAccessCidrs") or []
        parts.append(f"changes who can reach the Kubernetes API: public endpoint {'on, from ' + ', '.join(cidrs) if public else 'off'}")
    if "deletionProtection" in touched:
        parts.append(f"turns deletion protection {'on' if inputs.get('deletionProtection') else 'off'}")
    return f"updates cluster `{name}` in place: " + "; ".join(parts)


def replacement(r: dict[str, Any], forced_by: str, paths: tuple[str, ...] = ()) -> str:
    """What replacing ``r`` (a head plan entry) does; ``forced_by`` names the inputs that force it, ``paths`` lists them."""
    name, t = label(r), r["type"]
    if t == "aws:eks/nodeGroup:NodeGroup":
        text = f"replaces node group `{name}`: its nodes are drained and recreated; running jobs are killed"
    elif t == "eks:index:Cluster":
        text = f"replaces cluster `{name}`: a new control plane; every workload on it is recreated"
    elif t == "kubernetes:batch/v1:Job":
        text = f"replaces Job `{name}`: it runs again from the start"
    elif t == "kubernetes:apps/v1:StatefulSet":
        spec = (r.get("inputs") or {}).get("spec") or {}
        if (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get("whenDeleted") == "Delete":
            text = f"replaces StatefulSet `{name}`: its pods and, with whenDeleted: Delete, its claims are deleted; new, empty ones are made"
        else:
            text = f"replaces StatefulSet `{name}`: its pods are deleted and recreated; its claims stay and are mounted again"
        if any(p.startswith("spec.volumeClaimTemplates") for p in paths):
            text += (
                "; a claim template change reaches only claims made from now on: existing claims keep their size and class"
                " (grow one with `kubectl patch pvc`, docs/serving.md)"
            )
    elif t == "aws:autoscaling/tag:Tag":
        text = f"replaces Auto Scaling group tag `{name}`: running nodes keep the old value, nodes launched later get the new one"
    elif t in CRITICAL_TYPES:
        text = f"replaces {CRITICAL_TYPES[t]} `{name}`: data it holds or protects may be lost"
    elif t == "kubernetes:storage.k8s.io/v1:StorageClass":
        text = f"replaces StorageClass `{name}`: volumes it made are untouched; a claim made during the swap waits until it is back"
    elif t in CLUSTER_LEVEL:
        text = f"replaces {CLUSTER_LEVEL[t]} `{name}`: what relies on it is interrupted while the new one comes up"
    else:
        text = f"replaces {noun(r)} `{name}`"
    return f"{text} (forced by {forced_by})"


def update(r: dict[str, Any], touched: set[str], paths: tuple[str, ...] = (), old: dict[str, Any] | None = None) -> tuple[str, int]:
    """What updating ``r`` in place does, given the top-level inputs that change (``paths``: every changed path), and its tier."""
    name = label(r)
    if r["type"] == "aws:ec2/launchTemplate:LaunchTemplate" and touched - {"tags", "tagsAll", "defaultVersion", "updateDefaultVersion"}:
        # Any other change (the description included) makes the provider create a new launch template
        # version (terraform-provider-aws internal/service/ec2/ec2_launch_template.go, resourceLaunchTemplateUpdate:
        # its updateKeys list every template field but tags), which the node group follows (latestVersion),
        # and EKS rolls a new version out like an AMI update: node by node.
        return (
            f"updates launch template `{name}`: a new version, so EKS replaces every node of its node group, draining each (running jobs are killed)",
            DATA_OR_NODES,
        )
    if r["type"] == "aws:eks/nodeGroup:NodeGroup" and touched & {"version", "releaseVersion", "launchTemplate"}:
        return f"updates node group `{name}` in place: a version change rolls every node (drains them: running jobs are killed)", DATA_OR_NODES
    if r["type"] == "kubernetes:helm.sh/v3:Release":
        return f"upgrades Helm release `{name}` in place; what the chart changes inside it is not forecast: check `pulumi preview`", ROUTINE
    template = [p for p in paths if p.startswith("spec.template")]
    if r["type"] == "kubernetes:karpenter.sh/v1:NodePool" and template and all(p.startswith("spec.template.spec.requirements") for p in template):
        # Requirements are not in the template's hash (karpenter core nodepool.go, hash:"ignore"): only nodes
        # that no longer meet them drift.
        return (
            f"updates Karpenter pool `{name}`: its requirements change, so Karpenter replaces the nodes that no longer meet them"
            f" (all of them for a new capacity type or architecture, none when a type is only added), {_budget(r)} at a time",
            DATA_OR_NODES,
        )
    if r["type"] == "kubernetes:karpenter.sh/v1:NodePool" and template:
        # Karpenter hashes the NodePool template: nodes made from the old one are drifted and replaced
        # (karpenter.sh disruption docs, "Drift"), within the pool's disruption budget.
        return (
            f"updates Karpenter pool `{name}`: its node template changes, so Karpenter replaces every node of the pool (drift),"
            f" {_budget(r)} at a time, a new node before each old one goes; each serving pod restarts (a cold start)",
            DATA_OR_NODES,
        )
    if r["type"] == "kubernetes:karpenter.sh/v1:NodePool":
        return f"updates Karpenter pool `{name}` in place (limits, weight or disruption settings): no node is replaced", ROUTINE
    if r["type"] == "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass" and any(p.startswith("spec") for p in paths):
        # EC2NodeClass.Hash covers every spec field but the selector terms (karpenter-provider-aws v1.14.1
        # pkg/apis/v1/ec2nodeclass.go, hash:"ignore"); a new AMI or a subnet no longer selected drifts too.
        return (
            f"updates Karpenter node class `{name}`: nodes launched from it drift, and Karpenter replaces them one disruption budget at a time;"
            " each serving pod on them restarts (a cold start)",
            DATA_OR_NODES,
        )
    if r["type"] == "aws:ec2/tag:Tag":
        return f"updates tag `{name}` in place", ROUTINE
    if r["type"] == "kubernetes:kueue.x-k8s.io/v1beta2:ClusterQueue" and any(
        p.startswith("spec.resourceGroups") or p.startswith("spec.preemption") for p in paths
    ):
        before, after = gpu_quotas(old or {}), gpu_quotas(r)
        changed = [f"{f} {before.get(f, (0, 0))[0]}→{q[0]} GPUs (borrow up to {q[1]})" for f, q in after.items() if before.get(f) != q]
        changed += [f"{f} {q[0]}→0 GPUs" for f, q in before.items() if f not in after]
        what = "; ".join(changed) or "its preemption or other resources"
        return (
            f"changes team `{name}`'s quota: {what}. New admissions follow it at once; jobs already admitted keep running, even above a lowered quota",
            JOBS,
        )
    if r["type"] == "eks:index:Cluster" and touched & CLUSTER_ACCESS:
        return cluster_update(r, name, touched, str(((old or {}).get("inputs") or {}).get("version") or "")), DATA_OR_NODES
    if r["type"] == "aws:autoscaling/tag:Tag":
        return f"updates Auto Scaling group tag `{name}`: nodes launched later get it; running nodes are not touched", ROUTINE
    if r["type"] in ("kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet") and any(
        p.startswith("spec.template") for p in paths
    ):
        # A new pod template is a rollout: every pod is replaced (a notebook's kernel state is lost; its home stays).
        return f"updates {noun(r)} `{name}` in place: a new pod template, so each of its pods is restarted", ROUTINE
    return f"updates {noun(r)} `{name}` in place", ROUTINE
