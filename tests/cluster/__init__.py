"""An independent cluster check: what a live EKS cluster would do with a render.

The oracle reads only what a render writes (``plan.json`` and
``kubernetes/<cluster>.yaml`` under an output directory) and holds it to the
API server (:mod:`.apiserver`), Pod Security admission (:mod:`.pod_security`),
the scheduler and the autoscalers (:mod:`.scheduling`) and the AWS APIs
(:mod:`.aws_rules`).  Its facts (instance types, the DaemonSets EKS add-ons
install, API limits) are its own data, each with the upstream source it was
read from.

It imports nothing from ``mleks`` or ``stacks``: an oracle that shares code
with the product cannot catch the product's bugs.  Every check returns a list
of human-readable problems, empty when a live cluster would accept the render.

Modules: :mod:`.render_output` (load and group by cluster), :mod:`.apiserver`,
:mod:`.pod_security`, :mod:`.scheduling` (with its data in :mod:`.instance_types`
and :mod:`.daemonsets`), :mod:`.aws_rules`.
"""
