"""Kueue at the release this project pins: versions, the chart and image, and its API group.

Everything here comes from kubernetes-sigs/kueue at one release.  Bump :data:`VERSION` and the tests'
CRD schemas (``tests/fixtures/schemas/kueue-*``) together.
"""

from __future__ import annotations

# kubernetes-sigs/kueue v0.19.2 (2026-08-20): charts/kueue/Chart.yaml version 0.19.2, appVersion v0.19.2.
# hack/helm-chart-package.sh publishes the chart with its image set to registry.k8s.io/kueue/kueue at the tag.
VERSION = "0.19.2"
CHART = "oci://registry.k8s.io/kueue/charts/kueue"
IMAGE_REPOSITORY = "registry.k8s.io/kueue/kueue"
IMAGE_TAG = f"v{VERSION}"
NAMESPACE = "kueue-system"
"""Where upstream's installation docs put the manager (the chart installs into its release namespace)."""

API_VERSION = "kueue.x-k8s.io/v1beta2"
"""The CRDs' storage version at this release (charts/kueue/templates/crd/*: v1beta2 storage: true)."""
CONFIG_API_VERSION = "config.kueue.x-k8s.io/v1beta2"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
"""The label that puts a Job in a LocalQueue (it must be a label, on the Job)."""

# apis/config/v1beta2/defaults.go: DefaultRequeuingBackoffBaseSeconds and ...MaxSeconds.
DEFAULT_BACKOFF_BASE_SECONDS = 60
DEFAULT_BACKOFF_MAX_SECONDS = 3600
