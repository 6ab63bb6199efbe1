"""GPU and cluster metrics: CloudWatch Container Insights, or a DCGM exporter for your Prometheus.

``ObservabilityArgs.mode`` picks one per cluster:

* ``cloudwatch`` (default): the ``amazon-cloudwatch-observability`` EKS add-on
  (:class:`CloudWatchObservability`): Container Insights without its DCGM exporter, its
  agent reaching CloudWatch through an IRSA role, never the node role.
* ``prometheus``: :class:`DcgmExporter`, NVIDIA's DCGM exporter on GPU nodes, plus scrape
  configuration for it, Escalator and cluster-autoscaler: ``prometheus.io/*`` annotations on
  their Services, and/or Prometheus Operator ``ServiceMonitor`` objects (:func:`service_monitor`).
* ``none``: nothing (metrics-server and the node monitoring agent still run).

One DCGM engine per GPU node.  DCGM's profiling metrics (``DCGM_FI_PROF_*``) can be served by
one host engine per GPU, and the node monitoring agent already runs one (``dcgm-server``, see
:mod:`mleks.node_monitoring_agent`; aws/eks-node-monitoring-agent#256).  So the exporter here
starts no engine of its own: it connects to that one (``--remote-hostengine-info``), from the
host network where the engine's host port is, as the agent itself does.  Nothing here requests
a GPU.  In ``cloudwatch`` mode the add-on's own exporter embeds an engine: docs/operations.md
says what that means and why it is still one profiling engine per GPU.
"""

from __future__ import annotations

from typing import Any, Literal

import pulumi
from pydantic import Field, model_validator

from mleks.catalogs.node_daemonsets import DCGM_EXPORTER, ObservabilityMode
from mleks.catalogs.partitions import partition_of
from mleks.cluster_base import EksCluster
from mleks.errors import ConfigError, ConfigErrors
from mleks.infra.eks_addon import managed_addon
from mleks.manifests import k8s_objects
from mleks.manifests.k8s_objects import KubeObject
from mleks.node_monitoring_agent import DCGM_PORT
from mleks.validation.schema import Model, raise_all
from mleks.vocabulary import AMI_FAMILY_LABEL, GPU_PRESENT_LABEL, GPU_TOLERATION
from mleks.workload_identity import ServiceAccountRole

Mode = ObservabilityMode
Scrape = Literal["annotations", "serviceMonitor"]

CLOUDWATCH_TOKEN = "mleks:observability:CloudWatchObservability"
DCGM_TOKEN = "mleks:observability:DcgmExporter"
MONITORS_TOKEN = "mleks:observability:ServiceMonitors"

CLOUDWATCH_ADDON = "amazon-cloudwatch-observability"
# The agent's service account, which the add-on's serviceAccountRoleArn annotates (EKS user guide,
# "Install the CloudWatch agent with the Amazon CloudWatch Observability EKS add-on").
CLOUDWATCH_NAMESPACE = "amazon-cloudwatch"
CLOUDWATCH_SERVICE_ACCOUNT = "cloudwatch-agent"

NAMESPACE = "kube-system"
DCGM_NAME = "dcgm-exporter"
DCGM_METRICS_PORT = 9400
# NVIDIA's image at the tag the CloudWatch add-on chart ships (aws-observability/helm-charts,
# amazon-cloudwatch-observability-6.4.0 values.yaml): DCGM 4.6, the series of the node monitoring
# agent's engine (its Dockerfile at v1.7.0 pins DCGM 4.6.1), so client and engine agree.  The
# manifest follows upstream's dcgm-exporter.yaml (NVIDIA/dcgm-exporter, read at 4.5.3-4.8.2).
DCGM_IMAGE = "nvcr.io/nvidia/k8s/dcgm-exporter:4.6.0-4.8.3-distroless"
DCGM_LABELS = {"app.kubernetes.io/name": DCGM_NAME, "app.kubernetes.io/version": "4.8.3", "app.kubernetes.io/part-of": "mleks"}
DCGM_SELECTOR = {"app.kubernetes.io/name": DCGM_NAME}

# What the exporter collects: upstream's default-counters.csv (utilisation, memory, clocks, power,
# temperatures, PCIe replays, Xid, row remapping, NVLink bandwidth and the profiling fields), plus
# the NVLink error counters and the Xid count upstream ships commented out, because link errors
# and Xid bursts are what a platform engineer pages on.
COUNTERS = """\
# Format: DCGM field, Prometheus type, help
DCGM_FI_DEV_SM_CLOCK, gauge, SM clock frequency (in MHz).
DCGM_FI_DEV_MEM_CLOCK, gauge, Memory clock frequency (in MHz).
DCGM_FI_DEV_MEMORY_TEMP, gauge, Memory temperature (in C).
DCGM_FI_DEV_GPU_TEMP, gauge, GPU temperature (in C).
DCGM_FI_DEV_POWER_USAGE, gauge, Power draw (in W).
DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION, counter, Total energy consumption since boot (in mJ).
DCGM_FI_DEV_PCIE_REPLAY_COUNTER, counter, Total number of PCIe retries.
DCGM_FI_DEV_GPU_UTIL, gauge, GPU utilization (in %).
DCGM_FI_DEV_MEM_COPY_UTIL, gauge, Memory utilization (in %).
DCGM_FI_DEV_ENC_UTIL, gauge, Encoder utilization (in %).
DCGM_FI_DEV_DEC_UTIL, gauge, Decoder utilization (in %).
DCGM_FI_DEV_XID_ERRORS, gauge, Value of the last XID error encountered.
DCGM_EXP_XID_ERRORS_COUNT, counter, Count of XID errors within the user-specified time window.
DCGM_FI_DEV_FB_FREE, gauge, Framebuffer memory free (in MiB).
DCGM_FI_DEV_FB_USED, gauge, Framebuffer memory used (in MiB).
DCGM_FI_DEV_FB_RESERVED, gauge, Framebuffer memory reserved (in MiB).
DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL, counter, Total number of NVLink bandwidth counters for all lanes.
DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL, counter, Total number of NVLink flow-control CRC errors.
DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL, counter, Total number of NVLink data CRC errors.
DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL, counter, Total number of NVLink retries.
DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL, counter, Total number of NVLink recovery errors.
DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS, counter, Number of remapped rows for uncorrectable errors.
DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS, counter, Number of remapped rows for correctable errors.
DCGM_FI_DEV_ROW_REMAP_FAILURE, gauge, Whether remapping of rows has failed.
DCGM_FI_DRIVER_VERSION, label, Driver Version.
DCGM_FI_PROF_GR_ENGINE_ACTIVE, gauge, Ratio of time the graphics engine is active.
DCGM_FI_PROF_PIPE_TENSOR_ACTIVE, gauge, Ratio of cycles the tensor (HMMA) pipe is active.
DCGM_FI_PROF_DRAM_ACTIVE, gauge, Ratio of cycles the device memory interface is active sending or receiving data.
DCGM_FI_PROF_PCIE_TX_BYTES, counter, The rate of data transmitted over the PCIe bus - including both protocol headers and data payloads - in bytes per second.
DCGM_FI_PROF_PCIE_RX_BYTES, counter, The rate of data received over the PCIe bus - including both protocol headers and data payloads - in bytes per second.
"""


_ANNOTATIONS_ONLY: list[Scrape] = ["annotations"]


class ObservabilityArgs(Model):
    """Where GPU and cluster metrics go (``mleks:observability``; a bare mode is shorthand)."""

    mode: Mode = "cloudwatch"
    """``cloudwatch`` (Container Insights; no DCGM GPU metrics, one engine per GPU), ``prometheus`` (a DCGM exporter and scrape
    configuration for your Prometheus) or ``none``.  Default: cloudwatch."""

    scrape: list[Scrape] = Field(default_factory=lambda: _ANNOTATIONS_ONLY.copy())
    """With ``prometheus``: how your Prometheus finds the targets: ``annotations`` (``prometheus.io/scrape``
    on the Services, for a ``kubernetes_sd`` scrape job) and/or ``serviceMonitor`` (Prometheus Operator
    objects; its CRDs must be installed).  Default: [annotations]."""

    custom_metrics: Literal["none", "provided"] = "none"
    """Whether something you run serves the custom metrics API (``custom.metrics.k8s.io``: prometheus-adapter,
    KEDA, ...), which an inference service's ``autoscaling.podsMetric`` needs: ``provided`` or ``none``.  With
    ``none`` a ``podsMetric`` is refused, because its HPA would never get a reading.  Default: none."""

    cloudwatch_addon_version: str | None = None
    """With ``cloudwatch``: pin the add-on version (``v6.4.0-eksbuild.1``, say).  Default: EKS's default for
    the cluster's Kubernetes version."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"mode": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> ObservabilityArgs:
        errors = []
        if self.mode == "prometheus" and not self.scrape:
            errors.append(
                ConfigError("scrape", self.scrape, "annotations and/or serviceMonitor", "prometheus mode with no way for Prometheus to find the exporter")
            )
        if len(set(self.scrape)) != len(self.scrape):
            errors.append(ConfigError("scrape", self.scrape, "each of annotations, serviceMonitor at most once", "a method listed twice"))
        if self.mode != "prometheus" and "scrape" in self.model_fields_set:
            errors.append(ConfigError("scrape", self.scrape, "no value unless mode is prometheus", f"mode {self.mode!r} scrapes nothing"))
        if self.mode != "cloudwatch" and self.cloudwatch_addon_version is not None:
            errors.append(ConfigError("cloudwatchAddonVersion", self.cloudwatch_addon_version, "no value unless mode is cloudwatch", f"mode {self.mode!r}"))
        if errors:
            raise_all(type(self).__name__, errors)
        return self


def bottlerocket_problems(mode: Mode, bottlerocket_groups: list[str], key: str) -> list[ConfigError]:
    """``cloudwatch`` cannot run on Bottlerocket GPU nodes: the add-on's DCGM exporter fails there
    (aws-observability/helm-charts#34).  Prometheus mode skips them (see :func:`dcgm_exporter_objects`)."""
    if mode != "cloudwatch" or not bottlerocket_groups:
        return []
    return [
        ConfigError(
            key,
            mode,
            f"observability prometheus or none, or amiFamily al2023 for {bottlerocket_groups}",
            "the CloudWatch add-on's DCGM exporter does not run on Bottlerocket GPU nodes (aws-observability/helm-charts#34)",
        )
    ]


def cloudwatch_policy_arn(partition: str) -> str:
    return f"arn:{partition}:iam::aws:policy/CloudWatchAgentServerPolicy"


# One DCGM engine per GPU: the node monitoring agent's ``dcgm-server`` (nv-hostengine) is already on
# every GPU node, and the add-on's dcgm-exporter would start an embedded second one.  Beside another
# engine the agent reports AcceleratedHardwareReady=False (aws/containers-roadmap#2763), which node
# auto-repair turns into node replacements, and an embedded engine may fail to load modules beside a
# running nv-hostengine (NVIDIA/dcgm-exporter#61).  ``dcgmExporter.enabled`` is the chart's switch
# (aws-observability/helm-charts amazon-cloudwatch-observability-6.4.0 values.yaml and
# templates/linux/dcgm-exporter-daemonset.yaml); CloudWatch then collects no DCGM GPU metrics.
CLOUDWATCH_CONFIGURATION = {"dcgmExporter": {"enabled": False}}


class CloudWatchObservability(pulumi.ComponentResource):
    """The CloudWatch Observability add-on (Container Insights, its DCGM exporter off) in one cluster.

    Its agent assumes an IRSA role that trusts exactly ``amazon-cloudwatch/cloudwatch-agent`` and
    carries the AWS managed ``CloudWatchAgentServerPolicy`` (what the EKS user guide attaches; AWS
    keeps it in step with the agent).  Outputs: ``role_arn``, ``addon_version``.
    """

    def __init__(self, name: str, *, cluster: EksCluster, addon_version: str | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        problems = bottlerocket_problems("cloudwatch", [g.args.key for g in cluster.gpu_groups if g.args.ami_family == "bottlerocket"], "mode")
        if problems:
            raise ConfigErrors(problems)
        cluster.node_addon_added("CloudWatchObservability", observability="cloudwatch")
        super().__init__(CLOUDWATCH_TOKEN, name, None, opts)
        role = ServiceAccountRole.of_cluster(
            f"{name}-agent",
            cluster,
            parent=self,
            namespace=CLOUDWATCH_NAMESPACE,
            service_account=CLOUDWATCH_SERVICE_ACCOUNT,
            managed_policy_arns=[cloudwatch_policy_arn(partition_of(cluster.region))],
        )
        self.addon = managed_addon(
            f"{name}-addon",
            cluster=cluster,
            addon_name=CLOUDWATCH_ADDON,
            addon_version=addon_version,
            role_arn=role.role_arn,
            configuration=CLOUDWATCH_CONFIGURATION,
            parent=self,
            depends_on=[role],
        )
        self.role_arn = role.role_arn
        self.register_outputs({"role_arn": role.role_arn, "addon_version": self.addon.addon_version})


def service_monitor(name: str, namespace: str, selector: dict[str, str], port: str, labels: dict[str, str] | None = None) -> KubeObject:
    """A Prometheus Operator ServiceMonitor for the Services matching ``selector`` (port by name)."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or selector)},
        "spec": {
            "selector": {"matchLabels": dict(selector)},
            "namespaceSelector": {"matchNames": [namespace]},
            "endpoints": [{"port": port, "path": "/metrics", "interval": "30s"}],
        },
    }


def dcgm_exporter_objects(scrape: list[Scrape]) -> list[KubeObject]:
    """Every object of the DCGM exporter (pure)."""
    meta = {"namespace": NAMESPACE, "labels": dict(DCGM_LABELS)}
    container: dict[str, Any] = {
        "name": DCGM_NAME,
        "image": DCGM_IMAGE,
        "args": [
            "--collectors=/etc/dcgm-exporter/counters.csv",
            # The node monitoring agent's engine, reached on the host's loopback as the agent does.
            f"--remote-hostengine-info=localhost:{DCGM_PORT}",
        ],
        "env": [
            {"name": "DCGM_EXPORTER_LISTEN", "value": f":{DCGM_METRICS_PORT}"},
            # Labels each GPU's series with the pod using it, from the kubelet's pod-resources API.
            {"name": "DCGM_EXPORTER_KUBERNETES", "value": "true"},
            {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        ],
        "ports": [{"name": "metrics", "containerPort": DCGM_METRICS_PORT, "protocol": "TCP"}],
        # Root only to open the kubelet's pod-resources socket; no capability at all, because the
        # engine, not the exporter, reads the profiling counters (upstream adds SYS_ADMIN for its own).
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "pod-gpu-resources", "mountPath": "/var/lib/kubelet/pod-resources", "readOnly": True},
            {"name": "counters", "mountPath": "/etc/dcgm-exporter/counters.csv", "subPath": "counters.csv", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        # Upstream's requests and limits; it asks for no GPU, so it never takes one from a job.
        "resources": {"requests": DCGM_EXPORTER.requests(), "limits": {"cpu": "200m", "memory": "256Mi"}},
    }
    daemonset: KubeObject = {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": DCGM_NAME, **meta},
        "spec": {
            "selector": {"matchLabels": dict(DCGM_SELECTOR)},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "10%"}},
            "template": {
                "metadata": {"labels": dict(DCGM_LABELS)},
                "spec": {
                    # GPU nodes of this project only, on purpose: the GPU toleration lets it on them, and
                    # Bottlerocket nodes are left out (the engine there is not one we have verified).
                    "nodeSelector": {GPU_PRESENT_LABEL: "true", AMI_FAMILY_LABEL: "al2023"},
                    "tolerations": [dict(GPU_TOLERATION)],
                    "hostNetwork": True,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "automountServiceAccountToken": False,
                    "serviceAccountName": DCGM_NAME,
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        {"name": "pod-gpu-resources", "hostPath": {"path": "/var/lib/kubelet/pod-resources", "type": "Directory"}},
                        {"name": "counters", "configMap": {"name": f"{DCGM_NAME}-counters"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                    ],
                },
            },
        },
    }
    service: KubeObject = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": DCGM_NAME, **meta},
        "spec": {
            "type": "ClusterIP",
            "selector": dict(DCGM_SELECTOR),
            "ports": [{"name": "metrics", "port": DCGM_METRICS_PORT, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }
    if "annotations" in scrape:
        service["metadata"]["annotations"] = {"prometheus.io/scrape": "true", "prometheus.io/port": str(DCGM_METRICS_PORT), "prometheus.io/path": "/metrics"}
    objects: list[KubeObject] = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DCGM_NAME, **meta}, "automountServiceAccountToken": False},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{DCGM_NAME}-counters", **meta}, "data": {"counters.csv": COUNTERS}},
        daemonset,
        service,
    ]
    if "serviceMonitor" in scrape:
        objects.append(service_monitor(DCGM_NAME, NAMESPACE, DCGM_SELECTOR, "metrics", DCGM_LABELS))
    return objects


class DcgmExporter(pulumi.ComponentResource):
    """NVIDIA's DCGM exporter on the GPU nodes of one cluster, reading the node monitoring agent's engine.

    ``scrape`` picks the scrape configuration: ``annotations`` and/or ``serviceMonitor``.
    Outputs: ``image``.
    """

    def __init__(self, name: str, *, cluster: EksCluster, scrape: list[Scrape], opts: pulumi.ResourceOptions | None = None) -> None:
        if not scrape:
            raise ConfigErrors([ConfigError("scrape", scrape, "annotations and/or serviceMonitor", "no way for Prometheus to find the exporter")])
        cluster.node_addon_added("DcgmExporter", observability="prometheus")
        super().__init__(DCGM_TOKEN, name, None, opts)
        # The engine it reads is the node monitoring agent's, which comes with the cluster's first GPU group.
        depends = [cluster.node_monitoring_agent] if cluster.node_monitoring_agent is not None else []
        for obj in dcgm_exporter_objects(scrape):
            k8s_objects.create(obj, cluster.k8s_opts(self, depends_on=depends), name_prefix=name)
        self.image = DCGM_IMAGE
        self.register_outputs({"image": DCGM_IMAGE})


class ServiceMonitors(pulumi.ComponentResource):
    """ServiceMonitors for controllers that already serve ``/metrics`` behind a Service (Escalator,
    cluster-autoscaler): ``targets`` are ``(name, namespace, selector, port name)``."""

    def __init__(
        self, name: str, *, cluster: EksCluster, targets: list[tuple[str, str, dict[str, str], str]], opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__(MONITORS_TOKEN, name, None, opts)
        for target, namespace, selector, port in targets:
            k8s_objects.create(service_monitor(target, namespace, selector, port), cluster.k8s_opts(self), name_prefix=name)
        self.register_outputs({"targets": [t[0] for t in targets]})
