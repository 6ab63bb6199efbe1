"""Pod Security admission: every pod against the ``enforce`` level of its namespace.

The rules are written from the Pod Security Standards
(https://kubernetes.io/docs/concepts/security/pod-security-standards/) and
checked against k8s.io/pod-security-admission at tag ``kubernetes-1.35.6``
(commit of the snapshot read: kubernetes/pod-security-admission, files
``policy/check_*.go``).  Enforcement acts on Pods, so a Job or Deployment is
created and its controller gets ``FailedCreate ... violates PodSecurity`` for
every pod.

Namespaces not rendered, and kube-system, are treated as ``privileged`` (EKS
sets no Pod Security labels on them; the admission default is privileged).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.cluster.render_output import Cluster, PodTemplate, Render

Obj = dict[str, Any]
LEVELS = ("privileged", "baseline", "restricted")

# policy/check_capabilities_baseline.go capabilities_allowed_1_0.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
# policy/check_sysctls.go, the 1.32+ set (sysctlsAllowedV1Dot32).
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
}
# policy/check_seLinuxOptions.go selinuxAllowedTypes1_31.
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# policy/check_restrictedVolumes.go: the inline volume sources restricted allows.
RESTRICTED_VOLUME_SOURCES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected", "secret"}


def _containers(pod: PodTemplate) -> list[Obj]:
    """Containers, init containers and ephemeral containers (visitContainers in policy/visitor.go)."""
    return pod.containers() + list(pod.spec.get("ephemeralContainers") or [])


def _sc(container: Obj) -> Obj:
    return container.get("securityContext") or {}


def _pod_sc(pod: PodTemplate) -> Obj:
    return pod.spec.get("securityContext") or {}


def _user_namespace(pod: PodTemplate) -> bool:
    """``hostUsers: false``: 1.35 relaxes runAsNonRoot, runAsUser and procMount for such pods."""
    return pod.spec.get("hostUsers") is False


# --- baseline -----------------------------------------------------------------------------


def _host_namespaces(pod: PodTemplate) -> list[str]:
    return [f"{field}: true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.spec.get(field)]


def _privileged(pod: PodTemplate) -> list[str]:
    return [f"container {c.get('name')!r} privileged: true" for c in _containers(pod) if _sc(c).get("privileged")]


def _capabilities_baseline(pod: PodTemplate) -> list[str]:
    out = []
    for c in _containers(pod):
        extra = [cap for cap in (_sc(c).get("capabilities") or {}).get("add") or [] if cap not in BASELINE_CAPABILITIES]
        if extra:
            out.append(f"container {c.get('name')!r} adds {extra}, which baseline does not allow")
    return out


def _host_path(pod: PodTemplate) -> list[str]:
    return [f"hostPath volume {v.get('name')!r}" for v in pod.spec.get("volumes") or [] if "hostPath" in v]


def _host_ports(pod: PodTemplate) -> list[str]:
    return [f"container {c.get('name')!r} hostPort {p['hostPort']}" for c in _containers(pod) for p in c.get("ports") or [] if p.get("hostPort")]


def _app_armor(pod: PodTemplate) -> list[str]:
    out = []
    for key, value in (pod.metadata.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and value != "runtime/default" and not str(value).startswith("localhost/"):
            out.append(f"AppArmor annotation {key}={value}")
    for who, sc in [("pod", _pod_sc(pod))] + [(f"container {c.get('name')!r}", _sc(c)) for c in _containers(pod)]:
        profile = (sc.get("appArmorProfile") or {}).get("type")
        if profile not in (None, "RuntimeDefault", "Localhost"):
            out.append(f"{who} appArmorProfile {profile}")
    return out


def _se_linux(pod: PodTemplate) -> list[str]:
    out = []
    for who, sc in [("pod", _pod_sc(pod))] + [(f"container {c.get('name')!r}", _sc(c)) for c in _containers(pod)]:
        options = sc.get("seLinuxOptions") or {}
        if options.get("type", "") not in SELINUX_TYPES:
            out.append(f"{who} seLinuxOptions.type {options['type']!r}")
        if options.get("user") or options.get("role"):
            out.append(f"{who} sets seLinuxOptions user or role")
    return out


def _proc_mount(pod: PodTemplate) -> list[str]:
    if _user_namespace(pod):
        return []
    return [f"container {c.get('name')!r} procMount {_sc(c)['procMount']}" for c in _containers(pod) if _sc(c).get("procMount") not in (None, "Default")]


def _seccomp_baseline(pod: PodTemplate) -> list[str]:
    out = []
    for who, sc in [("pod", _pod_sc(pod))] + [(f"container {c.get('name')!r}", _sc(c)) for c in _containers(pod)]:
        kind = (sc.get("seccompProfile") or {}).get("type")
        if kind == "Unconfined":
            out.append(f"{who} seccompProfile Unconfined")
    return out


def _sysctls(pod: PodTemplate) -> list[str]:
    return [f"sysctl {s.get('name')!r}" for s in _pod_sc(pod).get("sysctls") or [] if s.get("name") not in SAFE_SYSCTLS]


def _host_probes(pod: PodTemplate) -> list[str]:
    """Probes and lifecycle handlers may not name a host (1.34+, policy/check_hostProbesAndhostLifecycle.go)."""
    out = []
    for c in _containers(pod):
        handlers = [c.get(p) or {} for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [(c.get("lifecycle") or {}).get(h) or {} for h in ("postStart", "preStop")]
        for handler in handlers:
            for kind in ("httpGet", "tcpSocket"):
                if (handler.get(kind) or {}).get("host"):
                    out.append(f"container {c.get('name')!r} {kind}.host {handler[kind]['host']!r}")
    return out


def _windows_host_process(pod: PodTemplate) -> list[str]:
    scs = [_pod_sc(pod)] + [_sc(c) for c in _containers(pod)]
    return ["windowsOptions.hostProcess: true"] if any((sc.get("windowsOptions") or {}).get("hostProcess") for sc in scs) else []


BASELINE: dict[str, Callable[[PodTemplate], list[str]]] = {
    "host namespaces": _host_namespaces,
    "privileged containers": _privileged,
    "capabilities": _capabilities_baseline,
    "hostPath volumes": _host_path,
    "host ports": _host_ports,
    "AppArmor": _app_armor,
    "SELinux": _se_linux,
    "/proc mount type": _proc_mount,
    "seccomp": _seccomp_baseline,
    "sysctls": _sysctls,
    "probe and lifecycle hosts": _host_probes,
    "HostProcess": _windows_host_process,
}


# --- restricted ---------------------------------------------------------------------------


def _volume_types(pod: PodTemplate) -> list[str]:
    out = []
    for volume in pod.spec.get("volumes") or []:
        sources = set(volume) - {"name"}
        if not sources <= RESTRICTED_VOLUME_SOURCES:
            out.append(f"volume {volume.get('name')!r} of type {sorted(sources - RESTRICTED_VOLUME_SOURCES)}")
    return out


def _privilege_escalation(pod: PodTemplate) -> list[str]:
    return [
        f"container {c.get('name')!r} must set allowPrivilegeEscalation: false" for c in _containers(pod) if _sc(c).get("allowPrivilegeEscalation") is not False
    ]


def _run_as_non_root(pod: PodTemplate) -> list[str]:
    if _user_namespace(pod):
        return []
    pod_level = _pod_sc(pod).get("runAsNonRoot")
    out = ["pod sets runAsNonRoot: false"] if pod_level is False else []
    for c in _containers(pod):
        value = _sc(c).get("runAsNonRoot")
        if value is False:
            out.append(f"container {c.get('name')!r} sets runAsNonRoot: false")
        elif value is None and pod_level is not True:
            out.append(f"pod or container {c.get('name')!r} must set runAsNonRoot: true")
    return out


def _run_as_user(pod: PodTemplate) -> list[str]:
    if _user_namespace(pod):
        return []
    scs = [("pod", _pod_sc(pod))] + [(f"container {c.get('name')!r}", _sc(c)) for c in _containers(pod)]
    return [f"{who} runAsUser: 0" for who, sc in scs if sc.get("runAsUser") == 0]


def _seccomp_restricted(pod: PodTemplate) -> list[str]:
    valid = ("RuntimeDefault", "Localhost")
    pod_type = (_pod_sc(pod).get("seccompProfile") or {}).get("type")
    out = [f"pod seccompProfile {pod_type}"] if pod_type is not None and pod_type not in valid else []
    for c in _containers(pod):
        kind = (_sc(c).get("seccompProfile") or {}).get("type")
        if kind is not None and kind not in valid:
            out.append(f"container {c.get('name')!r} seccompProfile {kind}")
        elif kind is None and pod_type not in valid:
            out.append(f"pod or container {c.get('name')!r} must set seccompProfile RuntimeDefault or Localhost")
    return out


def _capabilities_restricted(pod: PodTemplate) -> list[str]:
    out = []
    for c in _containers(pod):
        caps = _sc(c).get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            out.append(f"container {c.get('name')!r} must drop ALL capabilities")
        extra = [cap for cap in caps.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if extra:
            out.append(f"container {c.get('name')!r} adds {extra} (restricted allows only NET_BIND_SERVICE)")
    return out


RESTRICTED: dict[str, Callable[[PodTemplate], list[str]]] = {
    "volume types": _volume_types,
    "privilege escalation": _privilege_escalation,
    "running as non-root": _run_as_non_root,
    "running as non-root user": _run_as_user,
    "seccomp (restricted)": _seccomp_restricted,
    "capabilities (restricted)": _capabilities_restricted,
}


def violations(pod: PodTemplate, level: str) -> list[str]:
    """``control: detail`` for every rule of ``level`` (and the levels below it) the pod breaks."""
    checks = {} if level == "privileged" else dict(BASELINE)
    if level == "restricted":
        checks |= RESTRICTED
    return [f"{control}: {detail}" for control, check in checks.items() for detail in check(pod)]


def enforce_level(cluster: Cluster, namespace: str) -> str:
    """The namespace's ``pod-security.kubernetes.io/enforce`` label; privileged when absent or not rendered."""
    for ns in cluster.kind("Namespace"):
        if (ns.get("metadata") or {}).get("name") == namespace:
            level = ((ns["metadata"].get("labels") or {}).get("pod-security.kubernetes.io/enforce")) or "privileged"
            return level if level in LEVELS else "restricted"  # an unknown level is refused at namespace creation; be strict
    return "privileged"


def pod_security_problems(render: Render) -> list[str]:
    """Every pod template that its namespace's enforce level refuses."""
    out = []
    for cluster in render.clusters.values():
        for pod in cluster.pod_templates():
            level = enforce_level(cluster, pod.namespace)
            for violation in violations(pod, level):
                out.append(f"{cluster.name}: {pod.label}: violates PodSecurity {level!r}: {violation}")
    return out
