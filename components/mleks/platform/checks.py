"""Every rule between the platform's sections, in one place: the stack file and a Python program both pass here.

Each field is checked on its own when :class:`~mleks.platform.args.MLPlatformArgs` is built; what
needs two sections at once is here: a workload's group exists, has the workload's role and sits in
its cluster; a job fits its group's nodes beside every DaemonSet; each group has exactly one
autoscaler, and that autoscaler accepts it; datasets share their workloads' AZ; no two components
create one Kubernetes object; ...  :func:`cross_check` runs them all and returns every problem.

Keys are relative to the platform, in stack-file spelling (``trainingJobs.smoke.nodeGroup``);
:mod:`mleks.platform.load` and :class:`~mleks.platform.MLPlatform` spell them for their reader.
When some entries did not parse, ``unchecked`` names the node groups left out, and the checks
that depend on them are skipped, so a fix never reveals a second round of errors.
"""

from __future__ import annotations

from mleks import cluster_autoscaler_addon, dataset, dlc_training_job, efa_device_plugin, escalator_addon, inference_service, jupyter_notebook
from mleks.catalogs import karpenter as karpenter_catalog
from mleks.cluster_autoscaler_addon import ClusterAutoscalerArgs
from mleks.dlc_training_job import plan_job, resolve_queue
from mleks.errors import ConfigError, ConfigErrors
from mleks.escalator_addon import EscalatorArgs
from mleks.gpu_node_group import GpuNodeGroupArgs, asg_tag_errors
from mleks.inference_service import service_errors
from mleks.jupyter_notebook import notebook_errors
from mleks.kueue_addon import team_errors, team_namespace
from mleks.manifests.controllers import NAMESPACE as CONTROLLERS_NAMESPACE
from mleks.network import regular_zones, zone_count_error
from mleks.observability import bottlerocket_problems
from mleks.platform.args import MLPlatformArgs
from mleks.platform.plan import cluster_names, gpu_node_load, home_group, plan, resolve_group, service_groups, uses, zone_of
from mleks.vocabulary import NamedObjects, collisions


def topology_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """What the add-ons the topology installs need from the rest of the config (keys relative to ``mleks:``)."""
    errors: list[ConfigError] = []
    for name, group in cfg.node_groups.items():
        if group.efa:
            try:
                efa_device_plugin.image_for(cfg.region, key=f"nodeGroups.{name}.efa")
            except ConfigError as err:
                errors.append(err)
    return errors


def lookup_errors(cfg: MLPlatformArgs) -> list[ConfigError]:
    """What the config asks of the account and region that only a look-up can check: the VPC's AZ count."""
    if cfg.vpc.id is not None:
        return []
    error = zone_count_error("vpc.availabilityZoneCount", cfg.vpc.availability_zone_count, regular_zones())
    return [] if error is None else [error]


def autoscaling_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """Autoscaling problems that need the whole config.  Keys are relative to ``mleks:``.

    * every ``escalator.nodeGroups.<name>`` block names a node group that Escalator owns;
    * ``escalator`` / ``clusterAutoscaler`` settings are not given for an autoscaler
      that owns no group (they would silently do nothing);
    * per cluster, Escalator accepts its groups (min < max, options consistent
      with the group), and cluster-autoscaler has a release for the cluster's version.
    """
    errors: list[ConfigError] = []
    esc = cfg.escalator or EscalatorArgs()
    owner = {key: g.owner for key, g in cfg.node_groups.items()}
    escalator_owned = [r for r, o in owner.items() if o == "escalator"]

    for name in esc.node_groups:
        key = f"{escalator_addon.OPTIONS_KEY}.{name}"
        if name in unchecked:
            continue  # the group itself is reported; its options cannot be judged yet
        if name not in owner:
            errors.append(ConfigError(key, name, f"the name of a node group under nodeGroups: {sorted(owner)}", "no such node group"))
        elif owner[name] != "escalator":
            errors.append(
                ConfigError(
                    key,
                    name,
                    f"options for a group Escalator owns ({escalator_owned or 'none'}), or set nodeGroups.{name}.autoscaler: escalator",
                    f"nodeGroups.{name} has autoscaler {owner[name]!r}, so Escalator would never read these options",
                )
            )
    # A group that did not parse may be the one these settings are for.
    if cfg.escalator is not None and not escalator_owned and not unchecked:
        errors.append(
            ConfigError(
                "escalator",
                cfg.escalator.model_dump(by_alias=True, exclude_defaults=True),
                "no escalator settings, or a node group with autoscaler: escalator",
                "no node group is scaled by Escalator",
            )
        )
    if cfg.cluster_autoscaler is not None and "cluster-autoscaler" not in owner.values() and not unchecked:
        errors.append(
            ConfigError(
                "clusterAutoscaler",
                cfg.cluster_autoscaler.model_dump(by_alias=True, exclude_defaults=True),
                "no clusterAutoscaler settings, or a node group with autoscaler: cluster-autoscaler",
                "no node group is scaled by cluster-autoscaler",
            )
        )

    ca_owned = [k for k, o in owner.items() if o == "cluster-autoscaler"]
    for i, name in enumerate((cfg.cluster_autoscaler or ClusterAutoscalerArgs()).priority):
        key = f"clusterAutoscaler.priority[{i}]"
        if name in unchecked:
            continue
        if name not in owner:
            errors.append(ConfigError(key, name, f"the name of a node group cluster-autoscaler scales: {ca_owned}", "no such node group"))
        elif owner[name] != "cluster-autoscaler":
            problem = f"nodeGroups.{name} is scaled by {owner[name]}, not cluster-autoscaler"
            errors.append(ConfigError(key, name, f"a group cluster-autoscaler scales: {ca_owned}", problem))

    karpenter_owned = sorted(k for k, o in owner.items() if o == "karpenter")
    if karpenter_owned:
        errors += karpenter_catalog.cluster_errors(
            kubernetes_version=cfg.cluster.kubernetes_version, region=cfg.region, version_key="cluster.kubernetesVersion", region_key="region"
        )
    errors += asg_tag_errors([g for name, g in cfg.node_groups.items() if name not in unchecked and g.owner != "karpenter"], cfg.tags)
    for cp in plan(cfg):
        groups = [cfg.node_groups[key] for key in cp.groups]
        escalator_groups = [g for g in groups if g.owner == "escalator"]
        if escalator_groups:
            # Unknown option blocks were reported above, once for the stack.
            errors.extend(escalator_addon.node_group_errors(esc.for_groups([g.key for g in escalator_groups]), escalator_groups))
        ca_groups = [g for g in groups if g.owner == "cluster-autoscaler"]
        if ca_groups:
            # The priority list was checked against the whole stack above.
            errors.extend(cluster_autoscaler_addon.node_group_errors(ca_groups, cfg.cluster.kubernetes_version))
    return errors


def team_queues(cfg: MLPlatformArgs) -> dict[str, str] | None:
    """Namespace -> team of the stack's team queues, or None without teams."""
    return {team_namespace(name, t): name for name, t in cfg.teams.items()} if cfg.teams else None


def queue_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """The teams against the node groups and the other components' namespaces (keys relative to ``mleks:``)."""
    if not cfg.teams:
        if "kueue" in cfg.model_fields_set:
            return [
                ConfigError(
                    "kueue", cfg.kueue.model_dump(by_alias=True, exclude_defaults=True), "no kueue settings, or teams under mleks:teams", "no team uses them"
                )
            ]
        return []
    others = {svc.namespace: f"inferenceServices.{name}" for name, svc in cfg.inference_services.items()}
    others[CONTROLLERS_NAMESPACE] = "the cluster's controllers"
    groups = [g for k, g in cfg.node_groups.items() if k not in unchecked]
    return [e for e in team_errors(cfg.teams, groups, cfg.kueue, other_namespaces=others) if not any(f".{k}" in e.key for k in unchecked)]


def training_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """The whole-config checks of every job, as errors (empty when all is well).

    Jobs on a node group that did not parse (``unchecked``) are skipped: that group's error is the one to fix.
    """
    errors: list[ConfigError] = []
    has_train = any(g.role == "train" for g in cfg.node_groups.values())
    for key, args in [(f"trainingJobs.{name}", args) for name, args in cfg.training_jobs.items()]:
        found = resolve_group(cfg, "train", args.node_group, key, unchecked)
        if isinstance(found, ConfigError):
            errors.append(found)
            continue
        if found is None:
            if not has_train and not unchecked:
                errors.append(ConfigError(key, args.name, "a stack with a train node group, or no training jobs", "this stack has no train node group"))
            continue
        try:
            plan_job(args, found[1], cfg.region, gpu_node_load(cfg, found[1]))
        except ConfigError as err:
            errors.append(err.under(key))
        errors += [e.under(key) for e in resolve_queue(args.team, args.namespace, team_queues(cfg))[1]]
    return errors


def serving_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """Every problem the serving and notebook config has against the rest of the stack.

    Workloads on a node group that did not parse (``unchecked``) are skipped: that group's error is the one to fix.
    """
    errors: list[ConfigError] = []
    has = {role: any(g.role == role for g in cfg.node_groups.values()) for role in ("train", "inference")}

    for name, svc in cfg.inference_services.items():
        key = f"inferenceServices.{name}"
        found_all = service_groups(cfg, svc, key, unchecked)
        if isinstance(found_all, list) and found_all and isinstance(found_all[0], ConfigError):
            errors.extend(e for e in found_all if isinstance(e, ConfigError))
            continue
        if not found_all:
            if not has["inference"] and not unchecked:
                errors.append(
                    ConfigError(
                        key,
                        name,
                        "an inference node group in this stack, or no inference services",
                        f"the {cfg.topology} stack has no inference nodes (groups: {sorted(cfg.node_groups)}), so no cluster can run it",
                    )
                )
            continue
        groups = [g for _, g in found_all]
        if svc.exposure == "internal-nlb" and cfg.load_balancer_controller.install == "never":
            errors.append(
                ConfigError(
                    f"{key}.exposure",
                    svc.exposure,
                    "cluster-ip, or loadBalancerController.install: auto (or always)",
                    "an internal NLB needs the AWS Load Balancer Controller, and loadBalancerController.install is 'never'",
                )
            )
        loads = [gpu_node_load(cfg, g) for g in groups]
        errors += [e.under(key) for e in service_errors(svc, groups, cfg.region, loads)]

    for name, nb in cfg.notebooks.items():
        key = f"notebooks.{name}"
        if not has["train"]:
            if not unchecked:
                errors.append(
                    ConfigError(
                        key,
                        name,
                        "a train node group: notebooks live in the training cluster",
                        f"the {cfg.topology} stack has no train nodes (groups: {sorted(cfg.node_groups)})",
                    )
                )
            continue
        train: GpuNodeGroupArgs | None = None
        if nb.gpus:
            group = resolve_group(cfg, "train", nb.node_group, key, unchecked)
            if isinstance(group, ConfigError):
                errors.append(group)
                continue
            if group is None:
                continue
            train = group[1]
        load = gpu_node_load(cfg, train) if train is not None else None
        errors += [e.under(key) for e in notebook_errors(nb, train, cfg.region, load)]

    return errors


def operations_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """Problems of ``nodeRepair`` and ``observability`` against the node groups.  Keys are relative to ``mleks:``."""
    errors: list[ConfigError] = []
    for name in cfg.node_repair.node_groups:
        if name in unchecked:
            continue
        if name not in cfg.node_groups:
            errors.append(
                ConfigError(
                    f"nodeRepair.nodeGroups.{name}", name, f"the name of a node group under nodeGroups: {sorted(cfg.node_groups)}", "no such node group"
                )
            )
            continue
        if cfg.node_groups[name].owner == "karpenter":
            errors.append(
                ConfigError(
                    f"nodeRepair.nodeGroups.{name}",
                    cfg.node_repair.node_groups[name].model_dump(by_alias=True, exclude_defaults=True),
                    "no nodeRepair settings for a Karpenter group",
                    "EKS node auto-repair acts on managed node groups; Karpenter replaces its own unhealthy nodes (its nodeRepair feature)",
                )
            )
            continue
        try:
            cfg.node_repair.for_group(name)
        except ConfigErrors as err:  # the group's keys and the stack's contradict each other
            errors += [e.under(f"nodeRepair.nodeGroups.{name}") for e in err.errors]
    for name, group in cfg.node_groups.items():
        if "auto_repair" in group.model_fields_set:
            # One place for stack users, so a group's repair settings are never split between two keys.
            errors.append(
                ConfigError(
                    f"nodeGroups.{name}.autoRepair",
                    group.auto_repair.model_dump(by_alias=True, exclude_defaults=True),
                    f"the same settings under nodeRepair.nodeGroups.{name}",
                    "in a stack, node auto-repair is set under mleks:nodeRepair",
                )
            )
    if cfg.observability.custom_metrics == "none":
        for name, svc in cfg.inference_services.items():
            metric = svc.autoscaling.pods_metric
            if metric is not None:
                errors.append(
                    ConfigError(
                        f"inferenceServices.{name}.autoscaling.podsMetric",
                        metric.model_dump(by_alias=True),
                        "a CPU target only, or an adapter you run that serves custom.metrics.k8s.io (observability.customMetrics: provided)",
                        "nothing in the cluster serves the custom metrics API, so the HPA would never get a reading and never scale",
                    )
                )
    bottlerocket = sorted(k for k, g in cfg.node_groups.items() if g.ami_family == "bottlerocket")
    errors += bottlerocket_problems(cfg.observability.mode, bottlerocket, "observability")
    return errors


def dataset_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    errors: list[ConfigError] = []
    all_uses = uses(cfg, unchecked)
    defined = sorted(cfg.datasets)
    for use in all_uses:
        if use.dataset not in cfg.datasets:
            errors.append(ConfigError(f"{use.key}.name", use.dataset, f"a dataset under mleks:datasets: {defined or 'none defined'}", "no such dataset"))
    if cfg.datasets and not any(g.role == "train" for g in cfg.node_groups.values()) and not unchecked:
        errors.append(
            ConfigError("datasets", defined, "datasets in a stack with a train node group", "datasets live in the training cluster, and this stack has none")
        )
        return errors
    for name, ds in cfg.datasets.items():
        if ds.node_group is not None:
            found = resolve_group(cfg, "train", ds.node_group, f"datasets.{name}", unchecked)
            if isinstance(found, ConfigError):
                errors.append(found)
                continue
            if found is None:
                continue
        home = home_group(cfg, name, all_uses)
        if home is None or home in unchecked:
            continue
        zone = zone_of(cfg.node_groups[home])
        for use in all_uses:
            if use.dataset != name or use.group is None or use.group == home or use.group in unchecked:
                continue
            theirs = zone_of(cfg.node_groups[use.group])
            if theirs is not None and theirs != zone:
                where = zone or "a subnet of nodeGroups." + home
                errors.append(
                    ConfigError(
                        use.key,
                        name,
                        f"a dataset in the AZ of the group it runs on (set datasets.{name}.nodeGroup: {use.group}), or a group in {where}",
                        f"dataset {name} is in {where} (nodeGroups.{home}); this workload runs on nodeGroups.{use.group}, in {theirs}",
                    )
                )
    return errors


def name_owners(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[NamedObjects]:
    """Every workload and dataset of the stack with the objects it creates and its cluster (keys relative to ``mleks:``)."""
    clusters = cluster_names(cfg)
    train, serve = clusters.get("train"), clusters.get("inference")
    out: list[NamedObjects] = []
    if serve is not None:
        out += [NamedObjects(f"inferenceServices.{k}", serve, inference_service.object_names(s)) for k, s in cfg.inference_services.items()]
    if train is not None:
        out += [NamedObjects(f"trainingJobs.{k}", train, dlc_training_job.object_names(j)) for k, j in cfg.training_jobs.items()]
        out += [NamedObjects(f"notebooks.{k}", train, jupyter_notebook.object_names(n)) for k, n in cfg.notebooks.items()]
        mounts = uses(cfg, unchecked)
        for name in cfg.datasets:
            for namespace in sorted({u.namespace for u in mounts if u.dataset == name}):
                out.append(NamedObjects(f"datasets.{name}", train, dataset.object_names(name, cluster=train, namespace=namespace)))
    return out


def naming_errors(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    return collisions(name_owners(cfg, unchecked))


def cross_check(cfg: MLPlatformArgs, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """The checks between sections; ``unchecked`` names node groups that did not parse (their dependants are skipped).

    Keys come back relative to ``mleks:``; the same problem reported for two
    clusters is said once.
    """
    errors = [*topology_errors(cfg, unchecked), *autoscaling_errors(cfg, unchecked), *training_errors(cfg, unchecked), *serving_errors(cfg, unchecked)]
    errors += operations_errors(cfg, unchecked)
    errors += dataset_errors(cfg, unchecked)
    errors += queue_errors(cfg, unchecked)
    errors += naming_errors(cfg, unchecked)
    unique: dict[str, ConfigError] = {}
    for err in errors:
        unique.setdefault(str(err), err)
    return list(unique.values())
