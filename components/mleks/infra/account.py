"""Who is deploying: the account and partition that IAM ARNs are written for."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws


def account_and_partition(parent: pulumi.Resource) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
    """The deploying account id and its partition (``aws``, ``aws-cn``, ``aws-us-gov``)."""
    invoke = pulumi.InvokeOptions(parent=parent)
    account = aws.get_caller_identity_output(opts=invoke).account_id
    partition = aws.get_partition_output(opts=invoke).partition
    return account, partition
