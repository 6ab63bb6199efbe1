"""MLPlatform: the whole platform from one typed argument, checked whole before anything is registered.

What a stack file says (topology, clusters, GPU groups and their autoscalers, jobs, services,
notebooks, datasets, observability, repair) is :class:`~mleks.platform.args.MLPlatformArgs`;
``MLPlatform`` checks it with the same rules a stack file gets (:mod:`mleks.platform.checks`), then
builds it from the public components, in the order that makes it work:

1. the VPC (unless ``vpc.id`` names one) and one :class:`~mleks.ml_cluster.MLCluster` per planned
   cluster, each GPU group in the cluster of its role;
2. the autoscalers (Escalator for its groups, cluster-autoscaler for its own), then observability,
   which may scrape them;
3. the namespaces, at the Pod Security level every workload in them allows;
4. datasets and every add-on with a pod on GPU nodes, before the workloads that size their
   requests around those pods;
5. training jobs, inference services and notebooks.

Components a program adds beside it take them from the attributes: ``clusters``, ``node_groups``,
``training_jobs``, ``inference_services``, ``notebooks``, ``datasets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from mleks import cluster_autoscaler_addon, escalator_addon
from mleks.cluster_autoscaler_addon import ClusterAutoscalerAddon, ClusterAutoscalerArgs
from mleks.dataset import DatasetMount, FsxLustreDataset, claim_name
from mleks.dlc_training_job import DLCTrainingJob
from mleks.ebs_csi_driver import EbsCsiDriver
from mleks.errors import ConfigError, ConfigErrors
from mleks.escalator_addon import EscalatorAddon, EscalatorArgs
from mleks.fsx_csi_driver import FsxCsiDriver
from mleks.gpu_node_group import GpuNodeGroup
from mleks.inference_service import InferenceService
from mleks.jupyter_notebook import JupyterNotebook, port_forward_command, token_command
from mleks.karpenter_addon import KarpenterAddon
from mleks.kueue_addon import KueueAddon, team_namespace
from mleks.load_balancer_controller import AwsLoadBalancerController
from mleks.manifests import k8s_objects
from mleks.manifests.controllers import NAMESPACE as CONTROLLERS_NAMESPACE
from mleks.ml_cluster import MLCluster
from mleks.network import MLVpc
from mleks.observability import CloudWatchObservability, DcgmExporter, ServiceMonitors
from mleks.platform.args import MLPlatformArgs
from mleks.platform.checks import cross_check
from mleks.platform.plan import home_group, namespaces, plan, resolve_group, service_groups, uses
from mleks.validation.schema import python_spelling
from mleks.vocabulary import Role

TYPE = "mleks:platform:MLPlatform"
ROOT_ALIAS = [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
"""The clusters and the VPC were top-level resources of this repository's stacks before 0.3:
the alias keeps them (and so everything under them) in place, with no replacement."""


class MLPlatform(pulumi.ComponentResource):
    """Every cluster, GPU group, autoscaler, add-on and workload of ``args``.

    Args:
        name: the component's name (the stack program uses ``args.name_prefix``).
        args: the platform; see :class:`~mleks.platform.args.MLPlatformArgs`.
        config_key: the config namespace the args were read from (``"mleks"`` in a stack), so
            errors and warnings name ``mleks:nodeGroups.train.maxSize``; default: Python spelling,
            ``MLPlatform('ml').node_groups.train.max_size``.

    Raises ``ConfigErrors`` with every problem between the sections before it registers anything.

    Outputs: ``exports`` (what the stack program exports: clusters, node groups, jobs, services,
    notebooks, datasets), and the components as attributes.
    """

    def __init__(self, name: str, args: MLPlatformArgs, *, config_key: str | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        if not isinstance(args, MLPlatformArgs):
            raise ConfigErrors([_wrong_type(name, args)])
        problems = cross_check(args)
        if problems:
            if config_key:
                raise ConfigErrors([e.under(f"{config_key}:") if not e.key.startswith("aws:") else e for e in problems])
            raise ConfigErrors([python_spelling(e, f"MLPlatform({name!r})") for e in problems])
        super().__init__(TYPE, name, None, opts)
        self.args = args
        self._key = f"{config_key}:" if config_key else f"MLPlatform({name!r})."
        self.clusters: dict[str, MLCluster] = {}
        self.node_groups: dict[str, GpuNodeGroup] = {}
        """By the group's key in ``args.node_groups``."""
        self.namespaces: dict[tuple[str, str], pulumi.Resource] = {}
        """(cluster name, namespace) -> the Namespace the platform created there."""
        self.training_jobs: dict[str, DLCTrainingJob] = {}
        self.inference_services: dict[str, InferenceService] = {}
        self.notebooks: dict[str, JupyterNotebook] = {}
        self.datasets: dict[str, FsxLustreDataset] = {}
        self.exports: dict[str, Any] = {"topology": args.topology}

        self._clusters()
        self._autoscalers()
        self._observability()  # after the autoscalers, whose metrics it may scrape
        self._namespaces()  # before the workloads that live in them
        self._queues()  # the teams' queues, before the jobs that go through them
        self._datasets()  # claims in those namespaces, before the jobs that mount them
        # Every add-on with a pod on GPU nodes comes before the workloads, which leave room for those pods.
        storage = self._storage()
        self._training_jobs()
        self._serving(storage)
        self._summary()
        self.register_outputs({"exports": self.exports})

    # -- lookups ---------------------------------------------------------------------------

    def cluster_for(self, role: Role) -> MLCluster | None:
        """The cluster that holds the groups of ``role`` (one in either topology)."""
        group = next((g for g in self.node_groups.values() if g.role == role), None)
        return self.clusters[group.cluster.name] if group else None

    def groups_in(self, cluster: MLCluster) -> list[GpuNodeGroup]:
        return [g for g in self.node_groups.values() if g.cluster is cluster]

    def _namespace(self, cluster: MLCluster, name: str) -> list[pulumi.Resource]:
        """What a workload in ``name`` must depend on: the platform's Namespace, if it owns one."""
        found = self.namespaces.get((cluster.name, name))
        return [found] if found is not None else []

    # -- 1. network, clusters, GPU groups ------------------------------------------------------

    def _network(self) -> tuple[pulumi.Input[str], Sequence[pulumi.Input[str]], list[pulumi.Resource]]:
        """An existing VPC, or a new :class:`MLVpc`: its id, private subnet ids, and what nodes wait for (egress)."""
        cfg = self.args
        if cfg.vpc.id:
            return cfg.vpc.id, cfg.vpc.private_subnet_ids, []
        vpc = MLVpc(f"{cfg.name_prefix}-vpc", cfg.vpc, tags=cfg.tags, opts=pulumi.ResourceOptions(parent=self, aliases=ROOT_ALIAS))
        return vpc.vpc_id, vpc.private_subnet_list, vpc.egress

    def _clusters(self) -> None:
        cfg = self.args
        vpc_id, private_subnets, egress = self._network()
        for cp in plan(cfg):
            cluster = MLCluster(
                cp.name,
                cfg.cluster,
                cluster_name=cp.name,
                region=cfg.region,
                vpc_id=vpc_id,
                private_subnet_ids=private_subnets,
                tags=cfg.tags,
                config_key=f"{self._key}cluster",
                node_dependencies=egress,
                opts=pulumi.ResourceOptions(parent=self, aliases=ROOT_ALIAS),
            )
            self.clusters[cp.name] = cluster
            if any(cfg.node_groups[key].owner == "karpenter" for key in cp.groups):
                # Before its groups: their NodePools wait for the controller, its CRDs and its IAM.
                KarpenterAddon(f"{cp.name}-karpenter", cluster=cluster, opts=pulumi.ResourceOptions(parent=cluster))
            for key in cp.groups:
                # The group's auto-repair comes from args.node_repair (checked with the rest).
                group = cfg.node_groups[key].model_copy(update={"auto_repair": cfg.node_repair.for_group(key)})
                self.node_groups[key] = GpuNodeGroup(
                    f"{cfg.name_prefix}-{group.group_name}-gpu", group, cluster=cluster, opts=pulumi.ResourceOptions(parent=cluster)
                )

    # -- 2. autoscalers and observability ------------------------------------------------------

    def _autoscalers(self) -> None:
        esc = self.args.escalator or EscalatorArgs()
        ca = self.args.cluster_autoscaler or ClusterAutoscalerArgs()
        for name, cluster in self.clusters.items():
            groups = self.groups_in(cluster)
            child = pulumi.ResourceOptions(parent=cluster)
            escalator_groups = [g for g in groups if g.args.owner == "escalator"]
            if escalator_groups:
                EscalatorAddon(
                    f"{name}-escalator", esc.for_groups([g.args.key for g in escalator_groups]), cluster=cluster, node_groups=escalator_groups, opts=child
                )
            ca_groups = [g for g in groups if g.args.owner == "cluster-autoscaler"]
            if ca_groups:
                # Each cluster's cluster-autoscaler orders its own groups only.
                own = {g.args.key for g in ca_groups}
                ca_args = ca.model_copy(update={"priority": [p for p in ca.priority if p in own]})
                ClusterAutoscalerAddon(f"{name}-cluster-autoscaler", ca_args, cluster=cluster, node_groups=ca_groups, opts=child)

    def _observability(self) -> None:
        settings = self.args.observability
        for name, cluster in self.clusters.items():
            groups = self.groups_in(cluster)
            if not groups or settings.mode == "none":
                continue
            child = pulumi.ResourceOptions(parent=cluster)
            if settings.mode == "cloudwatch":
                CloudWatchObservability(f"{name}-cloudwatch", cluster=cluster, addon_version=settings.cloudwatch_addon_version, opts=child)
                continue
            DcgmExporter(f"{name}-dcgm", cluster=cluster, scrape=settings.scrape, opts=child)
            skipped = sorted(g.args.key for g in groups if g.args.ami_family == "bottlerocket")
            if skipped:
                pulumi.log.warn(
                    f"{self._key}observability = 'prometheus': no DCGM exporter on the Bottlerocket groups {skipped} of {name}"
                    " (only AL2023 GPU nodes run it); their GPU health still reaches the node monitoring agent and auto-repair",
                    resource=cluster,
                )
            if "serviceMonitor" in settings.scrape:
                owners = {g.args.owner for g in groups}
                targets = []
                if "escalator" in owners:
                    targets.append((escalator_addon.NAME, CONTROLLERS_NAMESPACE, escalator_addon.SELECTOR, "metrics"))
                if "cluster-autoscaler" in owners:
                    targets.append((cluster_autoscaler_addon.NAME, CONTROLLERS_NAMESPACE, cluster_autoscaler_addon.SELECTOR, "http"))
                if targets:
                    ServiceMonitors(f"{name}-monitors", cluster=cluster, targets=targets, opts=child)

    # -- 3. namespaces -------------------------------------------------------------------------

    def _namespaces(self) -> None:
        for (cluster_name, namespace), entry in sorted(namespaces(self.args).items()):
            cluster = self.clusters[cluster_name]
            # Retained on delete: users keep their own objects there (data claims, secrets),
            # which deleting the namespace would destroy with it.
            created = k8s_objects.create(entry.render(namespace), cluster.k8s_opts(cluster, retain_on_delete=True), name_prefix=cluster_name)
            self.namespaces[(cluster_name, namespace)] = created
            # Workloads ask their cluster for their namespace: this is it.
            cluster.adopt_namespace(namespace, created)

    def _queues(self) -> None:
        cfg = self.args
        cluster = self.cluster_for("train")
        if not cfg.teams or cluster is None:
            return
        settings = cfg.observability
        if settings.mode == "prometheus" and "serviceMonitor" not in settings.scrape:
            # Kueue's metrics are HTTPS with token authorization, which annotation-based scraping does not do.
            pulumi.log.warn(
                f"{self._key}observability.scrape = {settings.scrape}: Kueue's metrics are not scraped; add serviceMonitor"
                " (the Kueue chart's ServiceMonitor authenticates with the scraper's token)",
                resource=cluster,
            )
        KueueAddon(
            f"{cluster.name}-kueue",
            cfg.kueue,
            teams=cfg.teams,
            cluster=cluster,
            node_groups=[g for g in self.groups_in(cluster) if g.role == "train"],
            prometheus=settings.mode == "prometheus" and "serviceMonitor" in settings.scrape,
            opts=pulumi.ResourceOptions(parent=cluster),
        )
        self.exports["teams"] = {
            name: {"namespace": team_namespace(name, team), "localQueue": name, "quotas": dict(team.quotas), "borrowingLimit": team.borrowing_limit}
            for name, team in cfg.teams.items()
        }

    # -- 4. datasets and storage -----------------------------------------------------------------

    def _datasets(self) -> None:
        cfg = self.args
        if not cfg.datasets:
            return
        cluster = self.cluster_for("train")
        assert cluster is not None  # the checks refuse datasets without a train group
        child = pulumi.ResourceOptions(parent=cluster)
        driver = FsxCsiDriver(f"{cluster.name}-fsx-csi", cluster=cluster, opts=child)
        all_uses = uses(cfg)
        exported: dict[str, Any] = {}
        for name, ds in cfg.datasets.items():
            home = home_group(cfg, name, all_uses)
            group = self.node_groups.get(home) if home else None
            subnets = group.subnet_ids if group is not None else cluster.private_subnet_ids
            dataset = FsxLustreDataset(f"{cluster.name}-{name}", ds, cluster=cluster, subnet_id=subnets.apply(lambda ids: ids[0]), opts=child)
            self.datasets[name] = dataset
            in_namespaces = sorted({u.namespace for u in all_uses if u.dataset == name})
            for namespace in in_namespaces:
                dataset.claim_in(namespace, depends_on=[*self._namespace(cluster, namespace), driver])
            exported[name] = {
                "fileSystemId": dataset.file_system.id,
                "dnsName": dataset.file_system.dns_name,
                "mountName": dataset.file_system.mount_name,
                "claim": claim_name(name),
                "namespaces": in_namespaces,
                "nodeGroup": home,
                "s3": ds.s3.uri if ds.s3 else None,
                "retainedOnDestroy": ds.deletion == "retain",
            }
        self.exports["datasets"] = exported

    def _storage(self) -> EbsCsiDriver | None:
        """The EBS CSI driver of the notebooks' cluster, before any workload: its node pod is on every
        GPU node, and the workloads size their requests around it."""
        train_cluster = self.cluster_for("train")
        if not self.args.notebooks or train_cluster is None:
            return None
        return EbsCsiDriver(
            f"{train_cluster.name}-ebs-csi",
            cluster=train_cluster,
            kms_key_arn=self.args.cluster.volume_kms_key_arn,
            opts=pulumi.ResourceOptions(parent=train_cluster),
        )

    # -- 5. workloads ------------------------------------------------------------------------------

    def _mounted(self, mounts: list[DatasetMount], namespace: str) -> list[pulumi.Resource]:
        """The claims and S3 links of the datasets a workload mounts: its pods start once the data is there."""
        return [r for m in mounts for r in self.datasets[m.name].ready_in(namespace)]

    def _training_jobs(self) -> None:
        cfg = self.args
        cluster = self.cluster_for("train")
        exported: dict[str, Any] = {}
        if cluster is not None:
            for name, args in cfg.training_jobs.items():
                found = resolve_group(cfg, "train", args.node_group, f"trainingJobs.{name}")
                assert isinstance(found, tuple)  # the checks refuse a job without its group
                group_key, _ = found
                job = DLCTrainingJob(
                    f"{cluster.name}-{args.name}",
                    args,
                    cluster=cluster,
                    node_group=self.node_groups[group_key],
                    depends_on=[*self._namespace(cluster, args.namespace), *self._mounted(args.datasets, args.namespace)],
                    config_key=f"{self._key}trainingJobs.{args.name}",
                    opts=pulumi.ResourceOptions(parent=cluster),
                )
                self.training_jobs[args.name] = job
                p = job.plan
                exported[args.name] = {
                    "cluster": cluster.name,
                    "nodeGroup": group_key,
                    "namespace": p.namespace,
                    "image": p.image.uri,
                    "nodes": p.args.nodes,
                    "gpusPerNode": p.gpus,
                    "requests": {"cpu": p.cpu, "memory": p.memory},
                    "efaPerPod": p.efa_devices,
                    "masterAddr": p.master_addr,
                    "warnings": [str(w) for w in p.warnings],
                }
        self.exports["trainingJobs"] = exported

    def _load_balancer_controllers(self) -> dict[str, AwsLoadBalancerController]:
        """The AWS Load Balancer Controller of each cluster that gets one (see LoadBalancerControllerArgs.install)."""
        install = self.args.load_balancer_controller.install
        inference_cluster = self.cluster_for("inference")
        wanted: list[str] = []
        if install == "always":
            wanted = list(self.clusters)
        elif install == "auto" and inference_cluster is not None and any(s.exposure == "internal-nlb" for s in self.args.inference_services.values()):
            wanted = [inference_cluster.name]
        return {
            name: AwsLoadBalancerController(f"{name}-lb-controller", cluster=self.clusters[name], opts=pulumi.ResourceOptions(parent=self.clusters[name]))
            for name in wanted
        }

    def _serving(self, storage: EbsCsiDriver | None) -> None:
        """Every inference service and notebook, and what they need (``storage``: :meth:`_storage`'s)."""
        cfg = self.args
        controllers = self._load_balancer_controllers()
        exported_services: dict[str, Any] = {}
        inference_cluster = self.cluster_for("inference")
        for name, svc in cfg.inference_services.items():
            assert inference_cluster is not None  # the checks refuse a service without an inference group
            # An internal NLB is created by the controller, so its Service comes after it.
            controller = controllers[inference_cluster.name].release if svc.exposure == "internal-nlb" else None
            groups = service_groups(cfg, svc, f"inferenceServices.{name}")
            assert groups and all(isinstance(g, tuple) for g in groups)  # the checks refuse a service without its groups
            service = InferenceService(
                f"{inference_cluster.name}-{name}",
                svc,
                cluster=inference_cluster,
                node_group=[self.node_groups[g[0]] for g in groups],
                depends_on=self._namespace(inference_cluster, svc.namespace),
                load_balancer_controller=controller,
                config_key=f"{self._key}inferenceServices.{name}",
                opts=pulumi.ResourceOptions(parent=inference_cluster),
            )
            self.inference_services[name] = service
            exported_services[name] = {
                "cluster": inference_cluster.name,
                "nodeGroups": [g[0] for g in groups],
                "namespace": svc.namespace,
                "url": f"http://{svc.name}.{svc.namespace}.svc.cluster.local:{svc.port}",
                "portForward": f"kubectl -n {svc.namespace} port-forward svc/{svc.name} {svc.port}:{svc.port}",
                "image": service.image,
                "internalHostname": service.internal_hostname,
            }

        exported_notebooks: dict[str, Any] = {}
        train_cluster = self.cluster_for("train")
        if cfg.notebooks:
            assert train_cluster is not None and storage is not None  # the checks refuse notebooks without a train group
            for name, nb in cfg.notebooks.items():
                found = resolve_group(cfg, "train", nb.node_group, f"notebooks.{name}") if nb.gpus else None
                self.notebooks[name] = JupyterNotebook(
                    f"{train_cluster.name}-{name}",
                    nb,
                    cluster=train_cluster,
                    node_group=self.node_groups[found[0]] if isinstance(found, tuple) else None,
                    storage_class=storage.storage_class_name,
                    # The StorageClass, not the driver: the claim waits for the driver by itself.
                    depends_on=[*self._namespace(train_cluster, nb.namespace), storage.storage_class, *self._mounted(nb.datasets, nb.namespace)],
                    config_key=f"{self._key}notebooks.{name}",
                    opts=pulumi.ResourceOptions(parent=train_cluster),
                )
                exported_notebooks[name] = {
                    "cluster": train_cluster.name,
                    "namespace": nb.namespace,
                    "stopped": nb.stopped,
                    "portForward": port_forward_command(nb),
                    "token": token_command(nb),
                }
        if exported_services:
            self.exports["inferenceServices"] = exported_services
        if exported_notebooks:
            self.exports["notebooks"] = exported_notebooks

    def _summary(self) -> None:
        self.exports["clusters"] = {
            name: {
                "clusterName": cluster.cluster_name,
                "roles": sorted({g.role for g in self.groups_in(cluster)}, key=["train", "inference"].index),
                "nodeGroups": [g.args.key for g in self.groups_in(cluster)],
                "oidcProviderArn": cluster.oidc_provider_arn,
            }
            for name, cluster in self.clusters.items()
        }
        self.exports["kubeconfigs"] = {name: c.kubeconfig for name, c in self.clusters.items()}
        self.exports["nodeGroups"] = {
            key: {"role": g.role, "asgName": g.asg_name, "autoscaler": g.args.owner, "cluster": g.cluster.name}
            | ({"nodePool": g.args.group_name, "gpuLimit": g.args.gpu_limit} if g.args.owner == "karpenter" else {})
            for key, g in self.node_groups.items()
        }


def _wrong_type(name: str, args: object) -> ConfigError:
    given = type(args).__name__
    return ConfigError(f"MLPlatform({name!r}).args", given, "an MLPlatformArgs (build one from a dict with mleks.platform.load)", f"a {given}")
