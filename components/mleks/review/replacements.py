"""Which input changes make Pulumi replace a resource, per resource type the stacks register.

A forecast table, read from the providers' own sources (checked 2026-12-01):

* AWS types: the ``ForceNew: true`` attributes of the Terraform AWS provider schemas that
  pulumi-aws bridges (hashicorp/terraform-provider-aws, ``internal/service/<service>/<resource>.go``,
  e.g. ``eks/node_group.go`` at 012e0a32: ami_type, capacity_type, cluster_name, disk_size,
  instance_types, launch_template id/name, node_group_name, node_role_arn, remote_access,
  subnet_ids), spelled as Pulumi inputs (camelCase).  EKS cluster subnets are updatable in place
  since provider 5.25.0 (its CHANGELOG, cited in terraform-aws-eks#2868).
* Kubernetes: pulumi-kubernetes replaces on ``metadata.name``/``metadata.namespace`` and its
  ``forceNew`` table (``provider/pkg/provider/forcenew.go``: StorageClass parameters/provisioner,
  ConfigMap data, PVC spec, Secret type, Service clusterIP/type), and whenever the API server's
  dry run refuses a field as immutable: a Job's ``spec.template``/``spec.selector`` (batch/v1
  validation), a Deployment's, DaemonSet's or StatefulSet's ``spec.selector``, a StatefulSet's
  ``volumeClaimTemplates``/``serviceName``/``podManagementPolicy``, a binding's ``roleRef``.

A type missing here is reported as "unknown, check ``pulumi preview``", never as an update.
"""

from __future__ import annotations

# Pulumi type token -> input paths (dotted, list indices dropped) whose change replaces the resource.
AWS_REPLACE_ON: dict[str, tuple[str, ...]] = {
    "aws:eks/nodeGroup:NodeGroup": (
        "amiType",
        "capacityType",
        "clusterName",
        "diskSize",
        "instanceTypes",
        "launchTemplate.id",
        "launchTemplate.name",
        "nodeGroupName",
        "nodeGroupNamePrefix",
        "nodeRoleArn",
        "remoteAccess",
        "subnetIds",
    ),
    "aws:eks/addon:Addon": ("addonName", "clusterName"),
    "aws:ec2/launchTemplate:LaunchTemplate": ("name", "namePrefix"),
    "aws:ec2/vpc:Vpc": ("cidrBlock", "instanceTenancy", "ipv4IpamPoolId"),
    "aws:ec2/subnet:Subnet": ("availabilityZone", "availabilityZoneId", "cidrBlock", "vpcId", "outpostArn"),
    "aws:ec2/internetGateway:InternetGateway": (),
    "aws:ec2/eip:Eip": ("domain", "networkBorderGroup", "publicIpv4Pool", "customerOwnedIpv4Pool"),
    "aws:ec2/natGateway:NatGateway": ("allocationId", "connectivityType", "privateIp", "subnetId"),
    "aws:ec2/routeTable:RouteTable": ("vpcId",),
    "aws:ec2/route:Route": ("routeTableId", "destinationCidrBlock", "destinationIpv6CidrBlock", "destinationPrefixListId"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": ("subnetId", "gatewayId"),
    "aws:ec2/placementGroup:PlacementGroup": ("name", "strategy", "partitionCount", "spreadLevel"),
    "aws:iam/role:Role": ("name", "namePrefix", "path"),
    "aws:iam/rolePolicy:RolePolicy": ("name", "namePrefix", "role"),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ("policyArn", "role"),
    "aws:kms/key:Key": ("customerMasterKeySpec", "keyUsage", "multiRegion", "xksKeyId", "customKeyStoreId"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "namePrefix", "logGroupClass"),
    # autoscaling/group_tag.go: the group and tag.key are ForceNew; a value is updated in place (resourceGroupTagUpdate).
    "aws:autoscaling/tag:Tag": ("autoscalingGroupName", "tag.key"),
    # Karpenter's AWS side (terraform-provider-aws ForceNew attributes: sqs/queue.go name, name_prefix and
    # fifo_queue; sqs/queue_policy.go queue_url; events/rule.go name, name_prefix, event_bus_name;
    # events/target.go rule, target_id, event_bus_name; eks/access_entry.go cluster_name, principal_arn,
    # type; ec2/tag.go resource_id, key).
    "aws:sqs/queue:Queue": ("name", "namePrefix", "fifoQueue"),
    "aws:sqs/queuePolicy:QueuePolicy": ("queueUrl",),
    "aws:cloudwatch/eventRule:EventRule": ("name", "namePrefix", "eventBusName"),
    "aws:cloudwatch/eventTarget:EventTarget": ("rule", "targetId", "eventBusName"),
    "aws:eks/accessEntry:AccessEntry": ("clusterName", "principalArn", "type"),
    "aws:ec2/tag:Tag": ("resourceId", "key"),
    "aws:s3/bucketV2:BucketV2": ("bucket", "bucketPrefix", "objectLockEnabled"),
    # fsx/lustre_file_system.go at 06ee53d9 (a storage_capacity decrease also replaces: CustomizeDiff).
    "aws:fsx/lustreFileSystem:LustreFileSystem": (
        "backupId",
        "copyTagsToBackups",
        "deploymentType",
        "driveCacheType",
        "exportPath",
        "fileSystemTypeVersion",
        "importPath",
        "importedFileChunkSize",
        "kmsKeyId",
        "perUnitStorageThroughput",
        "securityGroupIds",
        "storageType",
        "subnetIds",
    ),
    # fsx/data_repository_association.go at 0a774656.
    "aws:fsx/dataRepositoryAssociation:DataRepositoryAssociation": ("fileSystemId", "fileSystemPath", "dataRepositoryPath"),
    "aws:ec2/securityGroup:SecurityGroup": ("name", "namePrefix", "description", "vpcId"),
    # vpc_security_group_ingress_rule / _egress_rule: only the group is RequiresReplace; rules modify in place.
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": ("securityGroupId",),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": ("securityGroupId",),
    # A provider is updated in place when its kubeconfig changes (pulumi-kubernetes diffs only the cluster identity).
    "pulumi:providers:kubernetes": ("cluster",),
    # pulumi-random: every argument of random_password is ForceNew (a new value each time).
    "random:index/randomPassword:RandomPassword": (
        "length",
        "special",
        "upper",
        "lower",
        "numeric",
        "minLower",
        "minUpper",
        "minNumeric",
        "minSpecial",
        "overrideSpecial",
        "keepers",
    ),
}

# pulumi-eks's Cluster component: the inputs that recreate the EKS control plane underneath it
# (aws_eks_cluster ForceNew: name, role_arn, kubernetes_network_config, encryption_config).
EKS_CLUSTER_REPLACE_ON = ("name", "serviceRole", "kubernetesServiceIpAddressRange", "ipFamily", "encryptionConfigKeyArn", "vpcId")

# Kubernetes kind -> immutable fields; metadata.name/namespace, kind and apiVersion apply to every kind.
KUBE_COMMON = ("metadata.name", "metadata.namespace", "kind", "apiVersion")
KUBE_REPLACE_ON: dict[str, tuple[str, ...]] = {
    "Job": ("spec.template", "spec.selector", "spec.completionMode"),
    "Deployment": ("spec.selector",),
    "DaemonSet": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.volumeClaimTemplates", "spec.serviceName", "spec.podManagementPolicy"),
    "Service": ("spec.clusterIP", "spec.type"),
    "ConfigMap": ("data", "binaryData"),
    "Secret": ("type",),
    "PersistentVolumeClaim": ("spec",),
    # core/v1 validation: a volume's source (spec.csi here) and volumeMode are immutable after creation.
    "PersistentVolume": ("spec.csi", "spec.volumeMode"),
    "StorageClass": ("parameters", "provisioner", "reclaimPolicy", "volumeBindingMode"),
    "RoleBinding": ("roleRef",),
    "ClusterRoleBinding": ("roleRef",),
    "Namespace": (),
    "ServiceAccount": (),
    "Role": (),
    "ClusterRole": (),
    "NetworkPolicy": (),
    "PodDisruptionBudget": (),
    "HorizontalPodAutoscaler": (),
    # apiregistration.k8s.io/v1 APIService: every spec field is mutable.
    "APIService": (),
    # A custom resource is patched in place; the ServiceMonitor CRD marks no field immutable.
    "ServiceMonitor": (),
    # Karpenter v1.14.1 CRDs: only nodeClassRef.group and .kind are immutable (CEL), and this project never
    # changes them; every other field is patched in place (what Karpenter then does to nodes is drift).
    "NodePool": (),
    "EC2NodeClass": (),
    # Kueue v0.19.2 v1beta2 CRDs: queues and flavors are patched in place (a LocalQueue's clusterQueue is
    # its team's name, as is its own, so a new team is a new object).
    "ResourceFlavor": (),
    "ClusterQueue": (),
    "LocalQueue": (),
    # A CRD is patched in place; its names (spec.group, spec.names) never change between releases.
    "CustomResourceDefinition": (),
}


def replace_paths(type_token: str, kind: str | None) -> tuple[str, ...] | None:
    """The replace-on-change paths of a resource, or ``None`` when the type is not in the table."""
    if type_token == "kubernetes:helm.sh/v3:Release":
        # pulumi-kubernetes replaces a release for a new name or namespace; anything else is a `helm upgrade`.
        return ("name", "namespace")
    if type_token.startswith("kubernetes:"):
        specific = KUBE_REPLACE_ON.get(kind or "")
        return None if specific is None else KUBE_COMMON + specific
    if type_token == "eks:index:Cluster":
        return EKS_CLUSTER_REPLACE_ON
    return AWS_REPLACE_ON.get(type_token)


def path_under(path: str, paths: tuple[str, ...]) -> bool:
    """Whether an input ``path`` (``a.b[0].c``) is at or under one of ``paths`` (indices ignored): a change
    there forces replacement when ``paths`` are a type's replace-on-change paths."""
    plain = strip_indices(path)
    return any(plain == p or plain.startswith(p + ".") for p in paths)


def strip_indices(path: str) -> str:
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)
