"""GPU nodes, Escalator and a DLC training job added to an EKS cluster you already run."""

import pulumi

import mleks

config = pulumi.Config()
region = pulumi.Config("aws").require("region")

cluster = mleks.ExistingCluster(
    "platform",
    cluster_name=config.require("clusterName"),
    region=region,
    kubernetes_version=config.require("kubernetesVersion"),
)
train = mleks.GpuNodeGroup(
    "platform-train",
    mleks.GpuNodeGroupArgs(role="train", instance_types=["g6e.12xlarge"], max_size=4),
    cluster=cluster,
    opts=pulumi.ResourceOptions(parent=cluster),
)
mleks.EscalatorAddon("platform-escalator", mleks.EscalatorArgs(), cluster=cluster, node_groups=[train], opts=pulumi.ResourceOptions(parent=cluster))
mleks.DLCTrainingJob(
    "platform-smoke",
    mleks.DLCTrainingJobArgs(name="smoke", version="2.13", command=["nvidia-smi", "-L"]),
    cluster=cluster,
    node_group=train.args,
    region=region,
    opts=pulumi.ResourceOptions(parent=cluster),
)
pulumi.export("trainAsg", train.asg_name)
