"""Customer managed KMS keys: the one a user names, or a new one that rotates yearly."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

DELETION_WINDOW_DAYS = 30
"""The longest AWS allows: a key scheduled for deletion by mistake can be recovered for a month."""


def key_arn(
    name: str,
    *,
    given: str | None,
    description: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
    retain_on_delete: bool = False,
) -> pulumi.Input[str]:
    """``given`` when set; else the ARN of a new key, rotated yearly, registered under ``parent``.

    ``retain_on_delete``: keep the key when the stack is destroyed, for keys whose data outlives it.
    """
    if given is not None:
        return given
    key = aws.kms.Key(
        name,
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, retain_on_delete=retain_on_delete),
    )
    return key.arn
