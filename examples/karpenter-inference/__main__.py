"""Inference on Karpenter: a spot pool Karpenter picks nodes for, an on-demand fallback pool, and a vLLM server.

Karpenter launches nodes for pending pods without an Auto Scaling group in between, choosing among
several GPU types and spot pools per pod, and removes nodes once they are empty.  The spot pool has
the higher weight, so Karpenter tries it first and falls back to on-demand when spot is short.
"""

import pulumi

import mleks

vpc = mleks.MLVpc("karpenter-vpc", mleks.VpcArgs(cidr_block="10.72.0.0/16"))
cluster = mleks.MLCluster(
    "serving",
    mleks.MLClusterArgs(),
    cluster_name="serving",
    vpc_id=vpc.vpc_id,
    # One by one, so the Karpenter add-on can tag each subnet for its node classes.
    private_subnet_ids=vpc.private_subnet_list,
    node_dependencies=vpc.egress,
)
child = pulumi.ResourceOptions(parent=cluster)
# Before the pools: their NodePools wait for the controller, its CRDs, IAM and interruption queue,
# and on `pulumi destroy` the pools (and their nodes) go first.
karpenter = mleks.KarpenterAddon("serving-karpenter", cluster=cluster, opts=child)


def pool(name: str, capacity: str, weight: int, max_gpus: int) -> mleks.GpuNodeGroup:
    args = mleks.GpuNodeGroupArgs(
        name=name,
        role="inference",
        instance_types=["g6e.xlarge", "g6e.2xlarge", "g6e.4xlarge"],
        capacity_type=capacity,
        autoscaler="karpenter",
        karpenter=mleks.KarpenterPoolArgs(weight=weight, max_gpus=max_gpus),
    )
    return mleks.GpuNodeGroup(f"serving-{name}", args, cluster=cluster, opts=child)


spot = pool("spot", "spot", weight=100, max_gpus=8)
on_demand = pool("on-demand", "on-demand", weight=10, max_gpus=4)

chat = mleks.InferenceService(
    "serving-chat",
    mleks.InferenceServiceArgs(
        name="chat",
        image={"uri": "vllm/vllm-openai:v0.11.0"},
        command=["vllm", "serve"],
        args=["Qwen/Qwen2.5-1.5B-Instruct", "--port", "8000"],
        port=8000,
        probes={"readinessPath": "/health"},
        autoscaling={"minReplicas": 1, "maxReplicas": 4, "targetCpuUtilizationPercent": 70},
    ),
    cluster=cluster,
    node_group=[spot, on_demand],
    opts=child,
)
pulumi.export("chatService", chat.service_name)
pulumi.export("interruptionQueue", karpenter.queue.name)
