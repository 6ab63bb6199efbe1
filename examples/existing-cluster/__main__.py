"""GPU nodes, Escalator and a DLC training job added to an EKS cluster you already run."""

import pulumi
import pulumi_aws as aws

import mleks

config = pulumi.Config()
cluster_name = config.require("clusterName")

# Optional: an existing managed node group whose IAM role the GPU nodes share (EKS already
# admits that role); without it they get a new role of their own.
share_role_of = config.get("nodeRoleFromNodeGroup")
node_role_arn = aws.eks.get_node_group_output(cluster_name=cluster_name, node_group_name=share_role_of).node_role_arn if share_role_of else None

cluster = mleks.ExistingCluster(
    "platform",
    cluster_name=cluster_name,
    # The cluster's own minor, set in the stack file: add-on images are pinned to it.
    kubernetes_version=config.require("kubernetesVersion"),
    node_role_arn=node_role_arn,
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
    node_group=train,
    opts=pulumi.ResourceOptions(parent=cluster),
)
pulumi.export("trainAsg", train.asg_name)
