"""The reference setup's final tests, as a deploy of their own (deploys/smoke.py).

On the master, with kubectl and the cluster's admin credentials, in a namespace of its own,
``kubelab-smoke`` (created with the label ``kubelab=smoke-test``; a namespace of that name
without the label is someone else's, and the test stops before touching it): every object the
test makes lives there, so a user's ``nginx`` pods, ReplicationController or Service elsewhere
are never touched.

1. every minion's Node is Ready in ``kubectl get nodes``;
2. the default service account exists (el7: with its token secret); a one-off pod of the smoke
   image gets the account's token mounted, and that token authenticates to the apiserver's TLS
   port (``GET /api`` answers 200 with it and 401 with a made-up one);
3. nginx as a ReplicationController of three replicas, all Running, on at least two minions
   when there are two or more;
4. ``kubectl expose rc nginx --port=80`` (skipped when the service exists), then, from every
   minion and from the master (el7: when it runs kube-proxy), the service's cluster IP answers
   nginx's page;
5. from each minion's host, every nginx pod on another minion answers on its pod IP (across
   flannel's overlay), and the pods on each minion have IPs inside that minion's flannel lease
   (``FLANNEL_SUBNET`` of /run/flannel/subnet.env);
6. a deleted nginx pod is replaced by the ReplicationController.

Each wait is bounded by ``smoke_timeout`` seconds and fails with one line naming what is not
ready. The namespace and the nginx ReplicationController and service in it stay for the next
run (which reuses them); ``smoke_cleanup`` deletes the namespace, and all in it, at the end.

Every step is one operation on every host (an empty one where it does not apply), so each
step is done everywhere before the next begins. Steps 4 and 5 on a host need what the master
found (the service's cluster IP, the pods, their nodes and IPs): they run as a ``python.call``
that reads the output of the master's listing operation at execution time, then runs its
checks on the host like any other command.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files, python, server

from .. import engine
from ..engine.common import step, template
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from ..settings.profiles import profile
from ..settings.validation import validate_inventory
from . import smoke_first_day as day
from .smoke_checks import (
    cleanup,
    expose,
    listing,
    namespace_step,
    nodes_ready_check,
    replacement_check,
    replicas_check,
    service_account_check,
    token_check,
)
from .smoke_from_hosts import check_from_host
from .smoke_test import (
    MANIFESTS,
    NAMESPACE,
    REPLICAS,
    TOKEN_POD,
    run_or_fail,
    script,
    smoke_kubectl,
    timeout,
)


def master_checks_service() -> bool:
    """Whether the master can reach service IPs: modern runs kube-proxy there; el7 (as in the
    reference setup) only when the master happens to run kube-proxy too."""
    if profile() == "modern":
        return True
    return "kube-proxy.service" in (host.get_fact(SystemdStatus) or {})


def _manifest(applies: bool, name: str, **variables):
    step(
        applies,
        files.template,
        name=f"Upload {MANIFESTS}/{name}",
        src=template(f"{MANIFESTS}/{name}"),
        dest=f"{MANIFESTS}/{name}",
        create_remote_dir=True,
        jinja_env_kwargs={"trim_blocks": True, "lstrip_blocks": True},
        **variables,
    )


def first_day_checks(applies: bool, image: str):
    """modern: what a user does on the first day (kubelab/workflows/smoke_first_day.py)."""

    def on_master(name: str, command: str):
        return step(applies, server.shell, name=name, commands=[command])

    _manifest(
        applies, "probe.yaml", image=image, namespace=NAMESPACE, probe=day.PROBE, app=day.PROBE_APP
    )
    on_master(f"A pod of the {day.PROBE} DaemonSet runs on each minion", day.probes_check())
    on_master(
        "From a pod on each minion, the nginx service and the apiserver resolve by name and answer",
        day.dns_check(),
    )
    on_master("kubectl exec, logs and port-forward reach a pod", day.kubectl_tools_check())
    on_master("A NodePort service answers on every minion's address", day.node_port_check())
    _manifest(
        applies, "web-deployment.yaml", image=image, namespace=NAMESPACE, deployment=day.DEPLOYMENT
    )
    on_master("A Deployment's rolling update completes", day.rollout_check())


@deploy("Smoke test", data_defaults=DEFAULTS)
def deploy_smoke():
    """The reference setup's final tests against a built cluster (see the module's text)."""
    engine.deploy_file_is_no_module()
    validate_inventory()
    if not topology.is_cluster_host():  # validation names it
        return
    master, minion = topology.is_first_master(), topology.is_minion()
    image = setting("smoke_image")

    def on_master(name: str, command: str):
        return step(master, server.shell, name=name, commands=[command])

    on_master("Every minion's Node is Ready", nodes_ready_check())
    on_master(f"The smoke test's namespace {NAMESPACE} (once)", namespace_step())
    on_master("The default service account exists", service_account_check())
    _manifest(master, "token-pod.yaml", image=image, pod=TOKEN_POD, namespace=NAMESPACE)
    on_master(
        "A pod gets the default service account's token, and the token authenticates",
        token_check(),
    )
    modern = profile() == "modern"
    _manifest(
        master, "nginx-rc.yaml", image=image, replicas=REPLICAS, modern=modern, namespace=NAMESPACE
    )
    on_master(
        f"Apply {MANIFESTS}/nginx-rc.yaml",
        script(run_or_fail(f"{smoke_kubectl()} apply -f {MANIFESTS}/nginx-rc.yaml")),
    )
    on_master(f"{REPLICAS} nginx replicas are Running, spread over the minions", replicas_check())
    on_master(f"kubectl -n {NAMESPACE} expose rc nginx --port=80 (once)", expose())
    listed = on_master("List the nginx service and pods for the other hosts' checks", listing())
    if master:  # the other hosts' checks read its output (check_from_host)
        engine.run_cache("smoke")["listing"] = listed
    step(
        minion or master_checks_service(),
        python.call,
        name="nginx's cluster IP answers here; on a minion, the nginx pods of the other "
        "minions by pod IP too",
        function=check_from_host,
        where=host.name,
        node=topology.node_name() if minion else None,
        minions=len(topology.minions()),
        seconds=timeout(),
    )
    on_master("A deleted nginx pod is replaced by the ReplicationController", replacement_check())
    first_day_checks(master and modern, image)
    if setting("smoke_cleanup", topology.master()):  # the master's: every host decides alike
        on_master(
            f"Delete the smoke test's namespace {NAMESPACE}, and all in it (smoke_cleanup)",
            cleanup(),
        )
        step(master, files.directory, name=f"Remove {MANIFESTS}", path=MANIFESTS, present=False)
