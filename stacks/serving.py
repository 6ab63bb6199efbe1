"""Serving and notebooks: wire InferenceServices and JupyterNotebooks into the platform.

* Inference services go to the cluster that holds the ``inference`` group
  (the inference cluster in ``dedicated``, the one cluster in ``unified``).
* Notebooks go to the cluster that holds the ``train`` group; GPU notebooks
  run on that group, CPU notebooks on its system nodes.
* Each cluster that hosts a notebook gets the EBS CSI driver add-on and the
  encrypted gp3 StorageClass; other clusters do not.
* Namespaces are created once per cluster, with the strictest Pod Security
  level every workload in them allows.

:func:`check` runs inside :class:`stacks.config.StackConfig` validation, so
bad input fails before any resource is registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pulumi

from mleks.ebs_csi_driver import EbsCsiDriver
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroupArgs
from mleks.inference_service import InferenceService, InferenceServiceArgs
from mleks.jupyter_notebook import JupyterNotebook, port_forward_command, token_command
from mleks.load_balancer_controller import AwsLoadBalancerController
from mleks.manifests.node_capacity import fit_errors, gpu_count_error
from mleks.manifests.workloads import resolve_image
from stacks import topology

if TYPE_CHECKING:
    from stacks.config import StackConfig
    from stacks.topology import Platform


# -- config shape and cross-checks (pure) -------------------------------------------------


def _group_key(name: str) -> str:
    return f"nodeGroups.{name}"


def check(cfg: StackConfig, unchecked: frozenset[str] = frozenset()) -> list[ConfigError]:
    """Every problem the serving and notebook config has against the rest of the stack.

    Workloads on a node group that did not parse (``unchecked``) are skipped: that group's error is the one to fix.
    """
    errors: list[ConfigError] = []
    has = {role: any(g.role == role for g in cfg.node_groups.values()) for role in ("train", "inference")}

    for name, svc in cfg.inference_services.items():
        key = f"inferenceServices.{name}"
        found_all = _service_groups(cfg, svc, key, unchecked)
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
        arches = {g.arch for g in groups}
        if len(arches) > 1:
            # The service renders one image reference, and DLC tags are built per architecture.
            detail = ", ".join(f"{g.key} is {g.arch}" for g in groups)
            errors.append(
                ConfigError(
                    f"{key}.nodeGroup", svc.node_group, "groups of one CPU architecture: the service runs one image", f"the groups mix architectures ({detail})"
                )
            )
            continue
        # Every listed group must be able to run a pod: a group no pod fits would be scaled by nothing.
        gpu_errors = [e for g in groups for e in _gpu_errors(cfg, key, svc.gpus, svc.cpu, svc.memory, g)]
        # A pod that fits no node makes the replica bound meaningless; report the cause only.
        errors += gpu_errors or _replica_errors(key, svc, groups)
        errors += _image_errors(key, cfg.region, "inference", svc.image, [t for g in groups for t in g.instance_infos])

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
            group = topology.resolve_group(cfg, "train", nb.node_group, key, unchecked)
            if isinstance(group, ConfigError):
                errors.append(group)
                continue
            if group is None:
                continue
            train = group[1]
            errors += _gpu_errors(cfg, key, nb.gpus, nb.cpu, nb.memory, train)
        errors += _image_errors(key, cfg.region, "training", nb.image, train.instance_infos if train is not None else [])

    return errors


def _service_groups(cfg: StackConfig, svc: InferenceServiceArgs, key: str, unchecked: frozenset[str] = frozenset()) -> list[Any] | None:
    """The groups (key, args) a service may run on, or its errors; None when that waits on a group that did not parse."""
    names = svc.node_group_names
    if names is None:
        found = topology.resolve_group(cfg, "inference", None, key, unchecked)
        return None if found is None else [found]
    listed = isinstance(svc.node_group, list)
    answers = [topology.resolve_group(cfg, "inference", n, key, unchecked, at=f"{key}.nodeGroup[{i}]" if listed else None) for i, n in enumerate(names)]
    errors = [a for a in answers if isinstance(a, ConfigError)]
    if errors:
        return errors
    if any(a is None for a in answers):
        return None
    return answers


def _gpu_errors(cfg: StackConfig, key: str, gpus: int, cpu: str | None, memory: str | None, group: GpuNodeGroupArgs) -> list[ConfigError]:
    group_key = _group_key(group.key)
    instance = group.smallest_instance
    too_many = gpu_count_error(f"{key}.gpus", gpus, instance, group_key)
    if too_many is not None:
        return [too_many]
    return [e.under(key) for e in fit_errors(cpu, memory, instance, group_key, topology.gpu_node_load(cfg, group))]


def _replica_errors(key: str, svc: InferenceServiceArgs, groups: list[GpuNodeGroupArgs]) -> list[ConfigError]:
    # Upper bound: every node of every group the largest member type, as many pods per node as its GPUs allow.
    per_node = [(g, max(t.accelerator_count for t in g.instance_infos) // svc.gpus) for g in groups]
    most = sum(g.max_size * n for g, n in per_node)
    if svc.autoscaling.max_replicas > most:
        detail = " + ".join(f"{_group_key(g.key)}.maxSize {g.max_size} x {n} pod(s)" for g, n in per_node)
        return [
            ConfigError(
                f"{key}.autoscaling.maxReplicas",
                svc.autoscaling.max_replicas,
                f"at most {most} ({detail} of {svc.gpus} GPU(s) per node)",
                "more pods than its inference groups can ever hold",
            )
        ]
    return []


def _image_errors(key: str, region: str, job_type: str, image: Any, instance_types: list[Any]) -> list[ConfigError]:
    try:
        resolve_image(image, region=region, job_type=job_type, instance_types=instance_types)
    except ConfigError as err:
        return [err.under(key)]
    return []


# -- namespaces (pure) ----------------------------------------------------------------------


# -- registration ------------------------------------------------------------------------------


def _load_balancer_controllers(cfg: StackConfig, platform: Platform) -> dict[str, AwsLoadBalancerController]:
    """The AWS Load Balancer Controller of each cluster that gets one (see LoadBalancerControllerArgs.install)."""
    install = cfg.load_balancer_controller.install
    inference_cluster = platform.cluster_for("inference")
    wanted: list[str] = []
    if install == "always":
        wanted = list(platform.clusters)
    elif install == "auto" and inference_cluster is not None and any(s.exposure == "internal-nlb" for s in cfg.inference_services.values()):
        wanted = [inference_cluster.name]
    return {
        name: AwsLoadBalancerController(f"{name}-lb-controller", cluster=platform.clusters[name], opts=pulumi.ResourceOptions(parent=platform.clusters[name]))
        for name in wanted
    }


def build_storage(cfg: StackConfig, platform: Platform) -> EbsCsiDriver | None:
    """The EBS CSI driver of the notebooks' cluster, before any workload: its node pod is on every GPU
    node, and the workloads size their requests around it."""
    train_cluster = platform.cluster_for("train")
    if not cfg.notebooks or train_cluster is None:
        return None
    return EbsCsiDriver(
        f"{train_cluster.name}-ebs-csi",
        cluster=train_cluster,
        kms_key_arn=cfg.cluster.volume_kms_key_arn,
        opts=pulumi.ResourceOptions(parent=train_cluster),
    )


def build(cfg: StackConfig, platform: Platform, storage: EbsCsiDriver | None) -> None:
    """Register every inference service and notebook of the stack, and what they need (``storage``: :func:`build_storage`'s)."""
    controllers = _load_balancer_controllers(cfg, platform)
    if not cfg.inference_services and not cfg.notebooks:
        return

    exported_services: dict[str, Any] = {}
    inference_cluster = platform.cluster_for("inference")
    for name, svc in cfg.inference_services.items():
        assert inference_cluster is not None  # guaranteed by check()
        # An internal NLB is created by the controller, so its Service comes after it.
        controller = controllers[inference_cluster.name].release if svc.exposure == "internal-nlb" else None
        groups = _service_groups(cfg, svc, f"inferenceServices.{name}")
        assert groups and all(isinstance(g, tuple) for g in groups)  # guaranteed by check()
        service = InferenceService(
            f"{inference_cluster.name}-{name}",
            svc,
            cluster=inference_cluster,
            node_group=[g[1] for g in groups],
            region=cfg.region,
            depends_on=platform.namespace(inference_cluster, svc.namespace),
            load_balancer_controller=controller,
            config_key=f"mleks:inferenceServices.{name}",
            opts=pulumi.ResourceOptions(parent=inference_cluster),
        )
        exported_services[name] = {
            "cluster": inference_cluster.name,
            "nodeGroups": [g[0] for g in groups],
            "namespace": svc.namespace,
            "url": f"http://{svc.name}.{svc.namespace}.svc.cluster.local:{svc.port}",
            "portForward": f"kubectl -n {svc.namespace} port-forward svc/{svc.name} {svc.port}:{svc.port}",
            "image": service.image,
            "internalHostname": service.internal_hostname,
        }

    exported_notebooks: dict[str, Any] = {}
    train_cluster = platform.cluster_for("train")
    if cfg.notebooks:
        assert train_cluster is not None and storage is not None  # guaranteed by check() and build_storage()
        for name, nb in cfg.notebooks.items():
            group = topology.resolve_group(cfg, "train", nb.node_group, f"notebooks.{name}") if nb.gpus else None
            JupyterNotebook(
                f"{train_cluster.name}-{name}",
                nb,
                cluster=train_cluster,
                node_group=group[1] if isinstance(group, tuple) else None,
                region=cfg.region,
                storage_class=storage.storage_class_name,
                # The StorageClass, not the driver: the claim waits for the driver by itself.
                depends_on=[*platform.namespace(train_cluster, nb.namespace), storage.storage_class],
                config_key=f"mleks:notebooks.{name}",
                opts=pulumi.ResourceOptions(parent=train_cluster),
            )
            exported_notebooks[name] = {
                "cluster": train_cluster.name,
                "namespace": nb.namespace,
                "stopped": nb.stopped,
                "portForward": port_forward_command(nb),
                "token": token_command(nb),
            }

    if exported_services:
        pulumi.export("inferenceServices", exported_services)
    if exported_notebooks:
        pulumi.export("notebooks", exported_notebooks)
