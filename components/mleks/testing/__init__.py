"""Offline testing for Pulumi programs that use mleks.

* :class:`MleksMocks`: a ``pulumi.runtime.Mocks`` that fills in what pulumi-eks
  and the AWS provider would return, so ``MLCluster`` and the rest work under
  the mock engine; subclass it to record or assert.
* :func:`set_mocks`: install them (with the monitor the SDK's mock engine
  needs) and the program's config; then build resources as a program would.
* :func:`run` / :class:`Project`: run a whole program, or a program folder,
  and get every registered resource back (:class:`RenderResult`).
* :class:`ExistingClusterFacts`: what an EKS cluster looked up by name
  (``mleks.ExistingCluster``) reports, passed to any of the above as
  ``existing_cluster=`` (or ``existing_clusters={name: facts}``).
"""

from mleks.testing.harness import RenderResult, run
from mleks.testing.mocks import ExistingClusterFacts, MleksMocks, RecordingMonitor, Registration, set_mocks
from mleks.testing.program import Project

__all__ = ["ExistingClusterFacts", "MleksMocks", "Project", "RecordingMonitor", "Registration", "RenderResult", "run", "set_mocks"]
