"""An inference-only cluster: spot GPU nodes scaled by cluster-autoscaler, and a vLLM server on them."""

import pulumi

import mleks

vpc = mleks.MLVpc("serving-vpc", mleks.VpcArgs(cidr_block="10.70.0.0/16"))
cluster = mleks.MLCluster(
    "serving",
    mleks.MLClusterArgs(),
    cluster_name="serving",
    vpc_id=vpc.vpc_id,
    private_subnet_ids=vpc.private_subnet_ids,
    node_dependencies=vpc.egress,
)
gpus = mleks.GpuNodeGroup(
    "serving-gpu",
    mleks.GpuNodeGroupArgs(role="inference", instance_types=["g6e.xlarge", "g6e.2xlarge"], capacity_type="spot", max_size=6),
    cluster=cluster,
    opts=pulumi.ResourceOptions(parent=cluster),
)
# An inference group belongs to cluster-autoscaler by default.
mleks.ClusterAutoscalerAddon(
    "serving-cluster-autoscaler", mleks.ClusterAutoscalerArgs(), cluster=cluster, node_groups=[gpus], opts=pulumi.ResourceOptions(parent=cluster)
)
chat = mleks.InferenceService(
    "serving-chat",
    mleks.InferenceServiceArgs(
        name="chat",
        image={"uri": "vllm/vllm-openai:v0.11.0"},
        command=["vllm", "serve"],
        args=["Qwen/Qwen2.5-1.5B-Instruct", "--port", "8000"],
        port=8000,
        probes={"readinessPath": "/health"},
    ),
    cluster=cluster,
    node_group=gpus,
    opts=pulumi.ResourceOptions(parent=cluster),
)
pulumi.export("chatService", chat.service_name)
