"""mleks: Pulumi components for machine-learning infrastructure on Amazon EKS.

The public API is what this module exports (``__all__``): the components a
program builds with, their argument models, and :class:`ConfigErrors`, the one
exception bad arguments raise.  Subpackages hold what the components are made
of: ``mleks.catalogs`` (GPU instances, DLC images, EKS versions, regions),
``mleks.manifests`` (Kubernetes manifest helpers), ``mleks.validation``
(argument models and limits), ``mleks.infra`` (AWS building blocks) and
``mleks.testing`` (offline mocks for your own tests).
"""

from mleks.cluster_autoscaler_addon import ClusterAutoscalerAddon, ClusterAutoscalerArgs
from mleks.dataset import DatasetArgs, DatasetMount, FsxLustreDataset
from mleks.dlc_training_job import DLCTrainingJob, DLCTrainingJobArgs
from mleks.ebs_csi_driver import EbsCsiDriver
from mleks.efa_device_plugin import EfaDevicePlugin
from mleks.errors import ConfigError, ConfigErrors, ConfigWarning
from mleks.escalator_addon import EscalatorAddon, EscalatorArgs
from mleks.existing_cluster import ExistingCluster
from mleks.fsx_csi_driver import FsxCsiDriver
from mleks.gpu_node_group import GpuNodeGroup, GpuNodeGroupArgs
from mleks.inference_service import InferenceService, InferenceServiceArgs
from mleks.jupyter_notebook import JupyterNotebook, JupyterNotebookArgs
from mleks.load_balancer_controller import AwsLoadBalancerController, LoadBalancerControllerArgs
from mleks.metrics_server import MetricsServer
from mleks.ml_cluster import MLCluster, MLClusterArgs, SystemNodeGroupArgs
from mleks.network import MLVpc, VpcArgs
from mleks.node_monitoring_agent import NodeMonitoringAgent
from mleks.node_repair import NodeRepairArgs, NodeRepairOverride, NodeRepairSettings
from mleks.nvidia_device_plugin import NvidiaDevicePlugin
from mleks.observability import CloudWatchObservability, DcgmExporter, ObservabilityArgs, ServiceMonitors
from mleks.workload_identity import ServiceAccountRole

__version__ = "0.2.0"

__all__ = [
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
    "EbsCsiDriver",
    "EfaDevicePlugin",
    "EscalatorAddon",
    "EscalatorArgs",
    "ExistingCluster",
    "FsxCsiDriver",
    "FsxLustreDataset",
    "GpuNodeGroup",
    "GpuNodeGroupArgs",
    "InferenceService",
    "InferenceServiceArgs",
    "JupyterNotebook",
    "JupyterNotebookArgs",
    "LoadBalancerControllerArgs",
    "MLCluster",
    "MLClusterArgs",
    "MLVpc",
    "MetricsServer",
    "NodeMonitoringAgent",
    "NodeRepairArgs",
    "NodeRepairOverride",
    "NodeRepairSettings",
    "NvidiaDevicePlugin",
    "ObservabilityArgs",
    "ServiceAccountRole",
    "ServiceMonitors",
    "SystemNodeGroupArgs",
    "VpcArgs",
    "__version__",
]
