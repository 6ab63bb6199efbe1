"""JupyterNotebook: one Jupyter server on Kubernetes, without Kubeflow, reachable only by port-forward.

What it renders, in the notebook's namespace:

* a generated token (``random.RandomPassword``, a Pulumi secret, stable
  across runs) in a Secret ``<name>-token``; the server reads it from the
  environment (``JUPYTER_TOKEN``).  The token is never in stack config;
* a ServiceAccount without an API token (notebook code has no business
  with the Kubernetes API);
* a StatefulSet of one replica (zero when ``stopped: true``) whose home
  directory is a PersistentVolumeClaim from a volumeClaimTemplate on the
  encrypted gp3 StorageClass of :mod:`mleks.ebs_csi_driver`;
* a ClusterIP Service.  There is no LoadBalancer, NodePort or Ingress: users
  reach it with ``kubectl port-forward`` (see docs/serving.md).

Placement: with ``gpus > 0`` the pod goes to the train group
(``nodeSelector role=train``, the GPU toleration, a GPU limit) and asks for
CPU and memory in proportion to its GPU share, because Escalator, which
scales the train group, counts only CPU and memory requests.  Without GPUs it
runs on the system nodes.

Security: the Jupyter Docker Stacks images run as ``jovyan`` (uid 1000,
group ``users`` gid 100); the pod runs as that user, with fsGroup 100 so the
new volume is writable, no privilege escalation and no capabilities, so the
namespace can enforce the ``restricted`` Pod Security level.

Stopping: ``stopped: true`` scales the StatefulSet to zero.  The PVC (and
the EBS volume) stays; once no pod of the train group is left on the GPU
node, Escalator taints it and deletes it after ``soft_delete_grace_period``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_random as random
from pydantic import Field, field_validator, model_validator

from mleks.catalogs.gpu import InstanceType
from mleks.catalogs.node_daemonsets import DaemonSetLoad
from mleks.cluster_base import EksCluster, unique
from mleks.dataset import DatasetMount, claim_name
from mleks.errors import ConfigError
from mleks.gpu_node_group import GpuNodeGroupArgs, NodeGroupInput, gpu_fit_errors, placement_errors
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.manifests.quantity import CpuQuantity, MemoryQuantity, storage_size
from mleks.manifests.workloads import (
    MANAGED_BY,
    EnvVars,
    ImageArgs,
    WorkloadName,
    WorkloadNamespace,
    await_annotations,
    check_shared_memory,
    cluster_ip_service,
    http_probe,
    object_meta,
    pod_spec,
    proportional_requests,
    resolve_image,
    runs_as_non_root,
    server_container,
    serving_port_only,
    shared_memory_volume,
    workload_labels,
)
from mleks.validation.schema import Model, component_errors
from mleks.vocabulary import ROLE_LABEL, ObjectName

TOKEN = "mleks:notebooks:JupyterNotebook"
ROLE = "train"
COMPONENT = "notebook"
PORT = 8888
TOKEN_KEY = "token"

# Jupyter Docker Stacks PyTorch image, CUDA 12 variant, pinned to a weekly
# build date.  Tag format from the docker-stacks docs; this tag is cited as a
# valid Quay tag in public material, but was not pulled while writing this.
DEFAULT_IMAGE = "quay.io/jupyter/pytorch-notebook:cuda12-2026-06-02"

# A CPU-only notebook lands on the system nodes, which are small.
CPU_ONLY_DEFAULTS = ("500m", "2Gi")


class JupyterNotebookArgs(Model):
    """One Jupyter server.  In stack YAML, under ``notebooks.<name>``."""

    name: WorkloadName
    """Name of the StatefulSet, Service and Secret (filled from the key in stack YAML)."""

    namespace: WorkloadNamespace = "notebooks"
    """Namespace, created if needed.  Default: notebooks."""

    image: ImageArgs = Field(default_factory=lambda: ImageArgs(uri=DEFAULT_IMAGE))
    """``{uri: ...}`` or ``{dlc: {framework, version}}``.  Default: the pinned Jupyter PyTorch CUDA 12 image."""

    command: list[str] | None = None
    """Entry point.  Default: the image's (``start-notebook.py`` in Jupyter Docker Stacks images)."""

    args: list[str] = Field(default_factory=list)
    """Arguments.  Default: none."""

    env: EnvVars = Field(default_factory=dict)
    """Extra environment variables (plain values; never secrets)."""

    gpus: int = Field(default=0, ge=0)
    """GPUs on the train group.  Default: 0 (a CPU notebook on the system nodes)."""

    cpu: CpuQuantity | None = None
    """CPU request.  Default: 75% of the GPU share of what the train group's smallest type can give pods; 500m without GPUs."""

    memory: MemoryQuantity | None = None
    """Memory request and limit.  Default: 75% of the GPU share; 2Gi without GPUs."""

    shared_memory: MemoryQuantity = "1Gi"
    """Size of the memory-backed /dev/shm (PyTorch data loaders); counts against ``memory``.  Default: 1Gi."""

    storage_size: str = "50Gi"
    """Size of the home directory volume, a Kubernetes quantity from 1Gi to 16Ti.  Default: 50Gi."""

    mount_path: str = "/home/jovyan"
    """Where the volume is mounted.  Default: /home/jovyan (the Docker Stacks user's home)."""

    datasets: list[DatasetMount] = Field(default_factory=list)
    """Datasets of the stack (``mleks:datasets``) to mount: ``[{name, mountPath, readOnly}]``; read-only unless
    ``readOnly: false``.  Default: none."""

    node_group: str | None = None
    """The train node group a GPU notebook runs on (``nodeGroups.<name>``).  Default: the stack's only
    train group; required when there are several.  Unused without GPUs."""

    stopped: bool = False
    """True scales the notebook to zero; the volume stays.  Default: false."""

    run_as_user: int = Field(default=1000, ge=0)
    """UID.  Default: 1000 (``jovyan``).  0 (root, e.g. a DLC image) lowers the namespace to baseline Pod Security."""

    run_as_group: int = Field(default=100, ge=0)
    """GID.  Default: 100 (``users``)."""

    fs_group: int = Field(default=100, ge=0)
    """Group that owns the volume.  Default: 100."""

    read_only_root_filesystem: bool = False
    """Mount the image read-only (an 8Gi emptyDir serves /tmp).  Default: false, because in Jupyter Docker
    Stacks images ``pip``/``conda install`` write into /opt/conda, which users expect to work."""

    await_timeout_seconds: int = Field(default=1800, ge=300, le=7200)
    """How long ``pulumi up`` waits for the notebook to be ready (a GPU node may have to start).  Default: 1800."""

    skip_await: bool = False
    """True: ``pulumi up`` does not wait for the pod.  Default: false."""

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        if "JUPYTER_TOKEN" in value:
            raise ConfigError("JUPYTER_TOKEN", "<hidden>", "no JUPYTER_TOKEN: the token is generated and kept in a Secret", "a token in plain config")
        return value

    @field_validator("storage_size", mode="before")
    @classmethod
    def _storage(cls, value: Any) -> str:
        return storage_size(value)

    @field_validator("mount_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value in ("/", "/dev", "/dev/shm", "/proc", "/sys"):
            raise ConfigError("", value, "an absolute directory such as /home/jovyan", "not a usable mount path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> JupyterNotebookArgs:
        check_shared_memory(self.shared_memory, self.memory)
        paths = [self.mount_path.rstrip("/"), "/dev/shm"]
        names: list[str] = []
        for i, d in enumerate(self.datasets):
            if d.name in names:
                raise ConfigError(f"datasets[{i}].name", d.name, "each dataset once", "mounted twice")
            if d.mount_path.rstrip("/") in paths:
                raise ConfigError(
                    f"datasets[{i}].mountPath", d.mount_path, f"a path other than the home volume's ({self.mount_path}) and /dev/shm", "mounted twice"
                )
            names.append(d.name)
            paths.append(d.mount_path.rstrip("/"))
        return self


# -- rendering (pure) -------------------------------------------------------------------


def labels(args: JupyterNotebookArgs) -> dict[str, str]:
    return workload_labels(args.name, COMPONENT)


def token_secret_name(args: JupyterNotebookArgs) -> str:
    return f"{args.name}-token"


def requests_for(args: JupyterNotebookArgs, instance: InstanceType | None, daemonsets: DaemonSetLoad | None) -> tuple[str, str]:
    """CPU and memory: as given; else the GPU share of ``instance`` after ``daemonsets``; else the CPU-only defaults."""
    if args.gpus and instance is not None and daemonsets is not None:
        cpu, memory = proportional_requests(instance, args.gpus, daemonsets)
    else:
        cpu, memory = CPU_ONLY_DEFAULTS
    return args.cpu or cpu, args.memory or memory


def render_secret(args: JupyterNotebookArgs, token: pulumi.Input[str]) -> KubeObject:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": object_meta(args, labels(args), name=token_secret_name(args)),
        "type": "Opaque",
        "stringData": {TOKEN_KEY: token},
    }


def render_service_account(args: JupyterNotebookArgs) -> KubeObject:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": object_meta(args, labels(args)), "automountServiceAccountToken": False}


def render_service(args: JupyterNotebookArgs) -> KubeObject:
    return cluster_ip_service(args, labels(args), PORT)


def render_statefulset(
    args: JupyterNotebookArgs,
    *,
    image: str,
    instance: InstanceType | None,
    storage_class: str,
    daemonsets: DaemonSetLoad | None = None,
    selector: dict[str, str] | None = None,
) -> KubeObject:
    env = [{"name": "JUPYTER_TOKEN", "valueFrom": {"secretKeyRef": {"name": token_secret_name(args), "key": TOKEN_KEY}}}]
    env += [{"name": k, "value": v} for k, v in args.env.items()]
    container = server_container(
        args,
        name="notebook",
        image=image,
        port=PORT,
        env=env,
        requests=requests_for(args, instance, daemonsets),
        # /api answers without a token (it only reports the server version).
        probes={"startupProbe": http_probe("/api", 10, 30), "readinessProbe": http_probe("/api", 10, 3), "livenessProbe": http_probe("/api", 30, 5)},
        volume_mounts=[
            {"name": "home", "mountPath": args.mount_path},
            {"name": "dshm", "mountPath": "/dev/shm"},
            *({"name": f"dataset-{i}", "mountPath": d.mount_path, "readOnly": d.read_only} for i, d in enumerate(args.datasets)),
        ],
    )
    datasets = [
        {"name": f"dataset-{i}", "persistentVolumeClaim": {"claimName": claim_name(d.name), "readOnly": d.read_only}} for i, d in enumerate(args.datasets)
    ]
    pod = pod_spec(args, selector or {ROLE_LABEL: ROLE}, [container], [shared_memory_volume(args.shared_memory), *datasets], automountServiceAccountToken=False)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": object_meta(args, labels(args), annotations=await_annotations(args.await_timeout_seconds, args.skip_await)),
        "spec": {
            "replicas": 0 if args.stopped else 1,
            "serviceName": args.name,
            "selector": {"matchLabels": labels(args)},
            "updateStrategy": {"type": "RollingUpdate"},
            # The home directory outlives the pod, a stop, and the StatefulSet itself.
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
            "template": {"metadata": {"labels": {**labels(args), **MANAGED_BY}}, "spec": pod},
            "volumeClaimTemplates": [
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": {"name": HOME_CLAIM_TEMPLATE, "labels": labels(args)},
                    "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class, "resources": {"requests": {"storage": args.storage_size}}},
                }
            ],
        },
    }


HOME_CLAIM_TEMPLATE = "home"


def object_names(args: JupyterNotebookArgs) -> tuple[ObjectName, ...]:
    """Every Kubernetes object :func:`render` creates, and the home claim its StatefulSet makes (``home-<name>-0``)."""
    ns = args.namespace
    return (
        *(ObjectName(kind, ns, args.name) for kind in ("ServiceAccount", "Service", "NetworkPolicy", "StatefulSet")),
        ObjectName("Secret", ns, token_secret_name(args)),
        ObjectName("PersistentVolumeClaim", ns, f"{HOME_CLAIM_TEMPLATE}-{args.name}-0"),
    )


def render(
    args: JupyterNotebookArgs,
    *,
    image: str,
    instance: InstanceType | None,
    storage_class: str,
    token: pulumi.Input[str],
    daemonsets: DaemonSetLoad | None = None,
    selector: dict[str, str] | None = None,
) -> list[KubeObject]:
    """Every Kubernetes object of the notebook: ServiceAccount, Secret, Service, NetworkPolicy, StatefulSet.

    ``daemonsets``: what the DaemonSets on the GPU group's nodes request (GPU notebooks only)."""
    return [
        render_service_account(args),
        render_secret(args, token),
        render_service(args),
        serving_port_only(args, labels(args), PORT),
        render_statefulset(args, image=image, instance=instance, storage_class=storage_class, daemonsets=daemonsets, selector=selector),
    ]


def port_forward_command(args: JupyterNotebookArgs) -> str:
    return f"kubectl -n {args.namespace} port-forward svc/{args.name} {PORT}:{PORT}"


def token_command(args: JupyterNotebookArgs) -> str:
    return f"kubectl -n {args.namespace} get secret {token_secret_name(args)} -o jsonpath='{{.data.{TOKEN_KEY}}}' | base64 -d"


# -- the component -------------------------------------------------------------------------


def notebook_errors(args: JupyterNotebookArgs, group: GpuNodeGroupArgs | None, region: str, load: DaemonSetLoad | None) -> list[ConfigError]:
    """Why a notebook cannot run (keyed relative to its args): a GPU notebook must fit a node of
    ``group`` beside ``load``; its image must resolve for the region (and the group's instance types)."""
    errors = gpu_fit_errors(args.gpus, args.cpu, args.memory, group, load) if group is not None and load is not None else []
    try:
        resolve_image(args.image, region=region, job_type="training", instance_types=group.instance_infos if group is not None else [])
    except ConfigError as err:
        errors.append(err)
    return errors


class JupyterNotebook(pulumi.ComponentResource):
    """A Jupyter server in ``cluster``, optionally with GPUs of the train group.

    ``node_group`` is the train group (a :class:`~mleks.gpu_node_group.GpuNodeGroup` or its args;
    required when ``gpus > 0``); ``region`` defaults to the cluster's;
    ``storage_class`` names an existing StorageClass (normally
    :class:`~mleks.ebs_csi_driver.EbsCsiDriver`'s), and ``depends_on``
    should include whatever provides it.

    Outputs: ``service_name``, ``namespace``, ``token_secret_name``,
    ``stopped``, ``port_forward`` and ``token_command`` (shell commands).
    """

    def __init__(
        self,
        name: str,
        args: JupyterNotebookArgs,
        *,
        cluster: EksCluster,
        node_group: NodeGroupInput | None = None,
        region: str | None = None,
        storage_class: str,
        depends_on: Sequence[pulumi.Resource] = (),
        config_key: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        region = region or cluster.region
        groups, errors = placement_errors(node_group, role="train", cluster=cluster, named=[args.node_group] if args.node_group else None)
        group = groups[0] if groups else None
        if args.gpus and node_group is None:
            errors.append(ConfigError("node_group", None, "a train group to run on, or args.gpus = 0", f"the notebook asks for {args.gpus} GPU(s)"))
        load = cluster.gpu_node_load(group) if (group is not None and args.gpus) else None
        args_errors = [] if errors else notebook_errors(args, group if args.gpus else None, region, load)
        if errors or args_errors:
            raise component_errors(errors, component="JupyterNotebook", name=name, config_key=config_key, args_errors=args_errors)
        super().__init__(TOKEN, name, None, opts)
        self.args = args
        node_group = group
        instance_types = node_group.instance_infos if (node_group is not None and args.gpus) else []
        resolved = resolve_image(args.image, region=region, job_type="training", instance_types=instance_types)
        for warning in resolved.warnings:
            pulumi.log.warn(str(warning.under(config_key)), resource=self)

        # Generated once and kept in the stack state: the same token on every
        # run, rotated only by replacing this resource (pulumi up --replace).
        password = random.RandomPassword(f"{name}-token", length=48, special=False, opts=pulumi.ResourceOptions(parent=self))
        instance = node_group.smallest_instance if (node_group is not None and args.gpus) else None
        selector = node_group.selector if node_group is not None else None
        objects = render(args, image=resolved.uri, instance=instance, storage_class=storage_class, token=password.result, daemonsets=load, selector=selector)

        # The pod starts only once its account, token, Service and policy exist.
        *before, statefulset = objects
        depends_on = unique([*cluster.namespace(args.namespace, non_root=runs_as_non_root(args.run_as_user)), *depends_on])
        first = [k8s_objects.create(obj, cluster.k8s_opts(self, depends_on=list(depends_on)), name_prefix=name) for obj in before]
        k8s_objects.create(statefulset, cluster.k8s_opts(self, depends_on=[*depends_on, *first]), name_prefix=name)

        self.service_name = args.name
        self.namespace = args.namespace
        self.register_outputs(
            {
                "service_name": args.name,
                "namespace": args.namespace,
                "token_secret_name": token_secret_name(args),
                "stopped": args.stopped,
                "image": resolved.uri,
                "port_forward": port_forward_command(args),
                "token_command": token_command(args),
            }
        )
