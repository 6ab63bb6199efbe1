"""A GPU training cluster from mleks components: VPC, cluster, an EFA train group, Escalator and a DLC job."""

import pulumi

import mleks

vpc = mleks.MLVpc("research-vpc", mleks.VpcArgs(cidr_block="10.60.0.0/16"))
cluster = mleks.MLCluster(
    "research",
    mleks.MLClusterArgs(admin_principals=["arn:aws:iam::123456789012:role/Admins"]),
    cluster_name="research",
    vpc_id=vpc.vpc_id,
    private_subnet_ids=vpc.private_subnet_ids,
    node_dependencies=vpc.egress,  # nodes wait for NAT egress; the control plane only for the subnets
)
# The cluster adds the NVIDIA and EFA device plugins this group needs.
train = mleks.GpuNodeGroup(
    "research-train",
    mleks.GpuNodeGroupArgs(role="train", instance_types=["p5.48xlarge"], max_size=2, efa=True),
    cluster=cluster,
    opts=pulumi.ResourceOptions(parent=cluster),
)
# A train group belongs to Escalator by default: without this add-on it would never scale.
mleks.EscalatorAddon("research-escalator", mleks.EscalatorArgs(), cluster=cluster, node_groups=[train], opts=pulumi.ResourceOptions(parent=cluster))
job = mleks.DLCTrainingJob(
    "research-smoke",
    mleks.DLCTrainingJobArgs(name="smoke", version="2.13", command=["python", "-c", "import torch; print(torch.cuda.device_count())"]),
    cluster=cluster,
    node_group=train,
    opts=pulumi.ResourceOptions(parent=cluster),
)
pulumi.export("trainAsg", train.asg_name)
pulumi.export("jobImage", job.image)
