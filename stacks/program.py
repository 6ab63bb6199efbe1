"""The Pulumi program: validate the whole config, then build the platform.

``__main__.py`` calls :func:`main`; so does the offline harness
(:mod:`stacks.offline`), which is how tests and ``python -m stacks.render``
run exactly what ``pulumi up`` runs.
"""

from __future__ import annotations

import pulumi

from stacks import autoscaling, datasets, namespaces, operations, serving, topology, training, validation


def main() -> None:
    cfg = validation.load()  # raises, with every problem, before any resource is registered
    platform = topology.build(cfg)
    autoscaling.build(cfg, platform)
    operations.build(cfg, platform)  # after the autoscalers, whose metrics it may scrape
    namespaces.build(cfg, platform)  # before the workloads that live in them
    exported_datasets = datasets.build(cfg, platform)  # claims in those namespaces, before the jobs that mount them
    # Every add-on with a pod on GPU nodes comes before the workloads, which leave room for those pods.
    storage = serving.build_storage(cfg, platform)
    training.build(cfg, platform)
    serving.build(cfg, platform, storage)

    pulumi.export("topology", cfg.topology)
    if exported_datasets:
        pulumi.export("datasets", exported_datasets)
    pulumi.export(
        "clusters",
        {
            name: {
                "clusterName": cluster.cluster_name,
                "roles": sorted({g.role for g in platform.groups_in(cluster)}, key=["train", "inference"].index),
                "nodeGroups": [g.args.key for g in platform.groups_in(cluster)],
                "oidcProviderArn": cluster.oidc_provider_arn,
            }
            for name, cluster in platform.clusters.items()
        },
    )
    pulumi.export("kubeconfigs", {name: c.kubeconfig for name, c in platform.clusters.items()})
    pulumi.export(
        "nodeGroups",
        {key: {"role": g.role, "asgName": g.asg_name, "autoscaler": g.args.owner, "cluster": g.cluster.name} for key, g in platform.node_groups.items()},
    )
