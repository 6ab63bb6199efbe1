"""The whole platform as one component: :class:`MLPlatform` and its typed :class:`MLPlatformArgs`.

This subpackage sits above the components it composes; no component imports it.

* :mod:`~mleks.platform.args`: the arguments (what a stack file holds under ``mleks:``);
* :mod:`~mleks.platform.plan`: the pure decisions (which cluster holds which group, which group a
  workload runs on, where each dataset lives, which namespaces to create);
* :mod:`~mleks.platform.checks`: every rule between sections, the one path the stack file and a
  Python program both pass;
* :mod:`~mleks.platform.load`: config data (a stack file's keys, a dict) to checked arguments,
  every problem at once;
* :mod:`~mleks.platform.component`: :class:`MLPlatform`, which builds it.
"""

from mleks.platform.args import MLPlatformArgs
from mleks.platform.component import MLPlatform
from mleks.platform.load import load

__all__ = ["MLPlatform", "MLPlatformArgs", "load"]
