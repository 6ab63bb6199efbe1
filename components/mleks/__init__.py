"""mleks: Pulumi components for machine-learning infrastructure on Amazon EKS.

The public API is what this module exports (``__all__``): :class:`MLPlatform`
(the whole platform from one typed argument), the components a program builds
with, every argument model a public signature names, and :class:`ConfigErrors`,
the one exception bad arguments raise.  Subpackages hold what the components are made
of: ``mleks.catalogs`` (GPU instances, DLC images, EKS versions, regions),
``mleks.manifests`` (Kubernetes manifest helpers), ``mleks.validation``
(argument models and limits), ``mleks.infra`` (AWS building blocks) and
``mleks.platform`` (the platform's arguments, plan and checks) and
``mleks.testing`` (offline mocks for your own tests).
"""

# ruff: noqa: F401  (the TYPE_CHECKING imports below are the public names, exported through __all__)
from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# Name -> the module that defines it.  The components load the Pulumi SDKs (a second or more), so
# they load when first used: ``mleks diff`` and ``from mleks.errors import ...`` need none of them.
_EXPORTS = {
    "AutoscalingArgs": "mleks.inference_service",
    "AwsLoadBalancerController": "mleks.load_balancer_controller",
    "CloudWatchObservability": "mleks.observability",
    "ClusterAutoscalerAddon": "mleks.cluster_autoscaler_addon",
    "ClusterAutoscalerArgs": "mleks.cluster_autoscaler_addon",
    "ConfigError": "mleks.errors",
    "ConfigErrors": "mleks.errors",
    "ConfigWarning": "mleks.errors",
    "DLCTrainingJob": "mleks.dlc_training_job",
    "DLCTrainingJobArgs": "mleks.dlc_training_job",
    "DatasetArgs": "mleks.dataset",
    "DatasetMount": "mleks.dataset",
    "DcgmExporter": "mleks.observability",
    "DlcImageArgs": "mleks.manifests.workloads",
    "EbsCsiDriver": "mleks.ebs_csi_driver",
    "EfaDevicePlugin": "mleks.efa_device_plugin",
    "EksCluster": "mleks.cluster_base",
    "EndpointAccess": "mleks.ml_cluster",
    "EscalatorAddon": "mleks.escalator_addon",
    "EscalatorArgs": "mleks.escalator_addon",
    "EscalatorAwsOptions": "mleks.manifests.escalator_config",
    "EscalatorNodeGroupOptions": "mleks.manifests.escalator_config",
    "ExistingCluster": "mleks.existing_cluster",
    "FastStartArgs": "mleks.gpu_node_group",
    "FsxCsiDriver": "mleks.fsx_csi_driver",
    "FsxLustreDataset": "mleks.dataset",
    "GpuNodeGroup": "mleks.gpu_node_group",
    "GpuNodeGroupArgs": "mleks.gpu_node_group",
    "ImageArgs": "mleks.manifests.workloads",
    "InferenceService": "mleks.inference_service",
    "InferenceServiceArgs": "mleks.inference_service",
    "JupyterNotebook": "mleks.jupyter_notebook",
    "JupyterNotebookArgs": "mleks.jupyter_notebook",
    "KarpenterAddon": "mleks.karpenter_addon",
    "KarpenterArgs": "mleks.karpenter_addon",
    "KarpenterPoolArgs": "mleks.gpu_node_group",
    "KueueAddon": "mleks.kueue_addon",
    "KueueArgs": "mleks.kueue_addon",
    "TeamArgs": "mleks.kueue_addon",
    "LoadBalancerControllerArgs": "mleks.load_balancer_controller",
    "MLCluster": "mleks.ml_cluster",
    "MLClusterArgs": "mleks.ml_cluster",
    "MLPlatform": "mleks.platform",
    "MLPlatformArgs": "mleks.platform",
    "MLVpc": "mleks.network",
    "MetricsServer": "mleks.metrics_server",
    "ModelSourceArgs": "mleks.inference_service",
    "NodeGroupInput": "mleks.gpu_node_group",
    "NodeMonitoringAgent": "mleks.node_monitoring_agent",
    "NodeRepairArgs": "mleks.node_repair",
    "NodeRepairOverride": "mleks.node_repair",
    "NodeRepairSettings": "mleks.node_repair",
    "NvidiaDevicePlugin": "mleks.nvidia_device_plugin",
    "ObservabilityArgs": "mleks.observability",
    "PodsMetricArgs": "mleks.inference_service",
    "ProbeArgs": "mleks.inference_service",
    "S3LinkArgs": "mleks.dataset",
    "ServiceAccountRole": "mleks.workload_identity",
    "ServiceMonitors": "mleks.observability",
    "SharedVolumeArgs": "mleks.dlc_training_job",
    "SystemNodeGroupArgs": "mleks.ml_cluster",
    "VpcArgs": "mleks.network",
}

# What type checkers and IDEs see; at run time __getattr__ imports on first use (a test keeps both lists equal).
if TYPE_CHECKING:
    from mleks.cluster_autoscaler_addon import ClusterAutoscalerAddon, ClusterAutoscalerArgs
    from mleks.cluster_base import EksCluster
    from mleks.dataset import DatasetArgs, DatasetMount, FsxLustreDataset, S3LinkArgs
    from mleks.dlc_training_job import DLCTrainingJob, DLCTrainingJobArgs, SharedVolumeArgs
    from mleks.ebs_csi_driver import EbsCsiDriver
    from mleks.efa_device_plugin import EfaDevicePlugin
    from mleks.errors import ConfigError, ConfigErrors, ConfigWarning
    from mleks.escalator_addon import EscalatorAddon, EscalatorArgs
    from mleks.existing_cluster import ExistingCluster
    from mleks.fsx_csi_driver import FsxCsiDriver
    from mleks.gpu_node_group import FastStartArgs, GpuNodeGroup, GpuNodeGroupArgs, KarpenterPoolArgs, NodeGroupInput
    from mleks.inference_service import AutoscalingArgs, InferenceService, InferenceServiceArgs, ModelSourceArgs, PodsMetricArgs, ProbeArgs
    from mleks.jupyter_notebook import JupyterNotebook, JupyterNotebookArgs
    from mleks.karpenter_addon import KarpenterAddon, KarpenterArgs
    from mleks.kueue_addon import KueueAddon, KueueArgs, TeamArgs
    from mleks.load_balancer_controller import AwsLoadBalancerController, LoadBalancerControllerArgs
    from mleks.manifests.escalator_config import EscalatorAwsOptions, EscalatorNodeGroupOptions
    from mleks.manifests.workloads import DlcImageArgs, ImageArgs
    from mleks.metrics_server import MetricsServer
    from mleks.ml_cluster import EndpointAccess, MLCluster, MLClusterArgs, SystemNodeGroupArgs
    from mleks.network import MLVpc, VpcArgs
    from mleks.node_monitoring_agent import NodeMonitoringAgent
    from mleks.node_repair import NodeRepairArgs, NodeRepairOverride, NodeRepairSettings
    from mleks.nvidia_device_plugin import NvidiaDevicePlugin
    from mleks.observability import CloudWatchObservability, DcgmExporter, ObservabilityArgs, ServiceMonitors
    from mleks.platform import MLPlatform, MLPlatformArgs
    from mleks.workload_identity import ServiceAccountRole


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        # ``mleks.catalogs`` and the other subpackages, as an eager package would have them after ``import mleks``.
        if not name.startswith("_") and importlib.util.find_spec(f"mleks.{name}") is not None:
            return importlib.import_module(f"mleks.{name}")
        raise AttributeError(f"module 'mleks' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = sorted([*_EXPORTS, "__version__"])
