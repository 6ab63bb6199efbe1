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
from mleks.gpu_node_group import FastStartArgs, GpuNodeGroup, GpuNodeGroupArgs, NodeGroupInput
from mleks.inference_service import AutoscalingArgs, InferenceService, InferenceServiceArgs, ModelSourceArgs, PodsMetricArgs, ProbeArgs
from mleks.jupyter_notebook import JupyterNotebook, JupyterNotebookArgs
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

__version__ = "0.2.0"

__all__ = [
    "AutoscalingArgs",
    "AwsLoadBalancerController",
    "CloudWatchObservability",
    "ClusterAutoscalerAddon",
    "ClusterAutoscalerArgs",
    "ConfigError",
    "ConfigErrors",
    "ConfigWarning",
    "DLCTrainingJob",
    "DLCTrainingJobArgs",
    "DatasetArgs",
    "DatasetMount",
    "DcgmExporter",
    "DlcImageArgs",
    "EbsCsiDriver",
    "EfaDevicePlugin",
    "EksCluster",
    "EndpointAccess",
    "EscalatorAddon",
    "EscalatorArgs",
    "EscalatorAwsOptions",
    "EscalatorNodeGroupOptions",
    "ExistingCluster",
    "FastStartArgs",
    "FsxCsiDriver",
    "FsxLustreDataset",
    "GpuNodeGroup",
    "GpuNodeGroupArgs",
    "ImageArgs",
    "InferenceService",
    "InferenceServiceArgs",
    "JupyterNotebook",
    "JupyterNotebookArgs",
    "LoadBalancerControllerArgs",
    "MLCluster",
    "MLClusterArgs",
    "MLPlatform",
    "MLPlatformArgs",
    "MLVpc",
    "MetricsServer",
    "ModelSourceArgs",
    "NodeGroupInput",
    "NodeMonitoringAgent",
    "NodeRepairArgs",
    "NodeRepairOverride",
    "NodeRepairSettings",
    "NvidiaDevicePlugin",
    "ObservabilityArgs",
    "PodsMetricArgs",
    "ProbeArgs",
    "S3LinkArgs",
    "ServiceAccountRole",
    "ServiceMonitors",
    "SharedVolumeArgs",
    "SystemNodeGroupArgs",
    "VpcArgs",
    "__version__",
]
