"""The cluster add-ons on the lab's real cluster (issue 18): metrics-server answering
``kubectl top``, Secrets encrypted at rest in etcd, and cluster DNS answering through day two.

- ``top_answers``: ``kubectl top nodes`` lists every Node and ``kubectl top pods -A`` some pods,
  within METRICS_WAIT s (metrics-server's first scrape takes up to a minute);
- ``secret_encrypted_in_etcd``: a Secret read raw from etcd on the master begins ``k8s:enc:``
  and holds none of its plaintext (etcdctl against the master's etcd on plain HTTP: call it on
  the open cluster, before the switch to ``secure``);
- ``DnsLookups``: a DaemonSet whose pod on each minion looks up nginx's service name every
  0.2 s (getent, the smoke image's libc), counting lookups sent and failed in an emptyDir (kept
  when a container restarts, as a kubelet upgrade may do); started before a day-two action,
  read back and removed after it (daytwo.while_nginx_serves).
"""

import json
import shlex
import subprocess
import time

import kube
import pipeline
from mirror import kubelab_defaults

MASTER = kube.MASTER
# the smoke test's (kubelab/workflows/smoke_test.py): nginx's service is there
NAMESPACE = "kubelab-smoke"
METRICS_WAIT = 180  # s
SECRET = "kubelab-encryption-check"
PLAINTEXT = "kubelab-plaintext-marker-7f3a"  # the Secret's value: must not be in etcd as is
LOOKUPS = "dns-lookups"
LOOKUPS_APP = "kubelab-dns-lookups"
LOOKUPS_WAIT = 120  # s, until every minion's lookup pod counts
MAX_FAILED_SHARE = 0.05  # as daytwo's request loop; the goal is none


def ssh(command: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*pipeline.LAB, "ssh", MASTER, command], capture_output=True, text=True, timeout=timeout
    )


def cluster_domain() -> str:
    return kubelab_defaults(pipeline.REPO)["cluster_domain"]


# kubectl top ---------------------------------------------------------------------------------


def top_answers(inventory: str) -> str:
    """``kubectl top nodes`` lists every Node and ``kubectl top pods -A`` some pods."""
    nodes = {name.removeprefix("node/") for name in kube.kubectl("get nodes -o name").split()}
    started = time.monotonic()
    while True:
        top_nodes = ssh(f"{kube.KUBECTL} top nodes --no-headers")
        top_pods = ssh(f"{kube.KUBECTL} top pods -A --no-headers")
        listed = {line.split()[0] for line in top_nodes.stdout.splitlines() if line.strip()}
        pods = [line for line in top_pods.stdout.splitlines() if line.strip()]
        if top_nodes.returncode == 0 and top_pods.returncode == 0 and nodes <= listed and pods:
            break
        if time.monotonic() - started > METRICS_WAIT:
            missing = ", ".join(sorted(nodes - listed)) or "none"
            raise pipeline.StepFailed(
                f"kubectl top did not answer within {METRICS_WAIT} s (nodes without metrics: "
                f"{missing}; top nodes: {(top_nodes.stdout + top_nodes.stderr).strip()[-300:]!r}"
                f"; top pods -A: {(top_pods.stdout + top_pods.stderr).strip()[-300:]!r})"
            )
        time.sleep(5)
    rows = "; ".join(" ".join(line.split()) for line in top_nodes.stdout.splitlines())
    return (
        f"after {time.monotonic() - started:.0f} s: kubectl top nodes: {rows}; "
        f"kubectl top pods -A: {len(pods)} pods"
    )


# Secrets at rest -----------------------------------------------------------------------------


def secret_encrypted_in_etcd(inventory: str) -> str:
    """A Secret made through the apiserver, read raw from etcd: ``k8s:enc:``, no plaintext."""
    if SECRET not in kube.kubectl(f"-n {NAMESPACE} get secrets -o name"):
        kube.kubectl(
            f"-n {NAMESPACE} create secret generic {SECRET} --from-literal=value={PLAINTEXT}"
        )
    key = f"/registry/secrets/{NAMESPACE}/{SECRET}"
    raw = "/tmp/kubelab-secret-raw"
    read = ssh(
        f"ETCDCTL_API=3 etcdctl --command-timeout=10s get {key} --print-value-only > {raw} || "
        f"{{ rm -f {raw}; exit 3; }}; head -c 40 {raw} | tr -c '[:print:]' '.'; echo; "
        f"grep -ac {PLAINTEXT} {raw}; wc -c < {raw}; rm -f {raw}"
    )
    lines = read.stdout.splitlines()
    if read.returncode != 0 or len(lines) != 3:
        raise pipeline.StepFailed(f"etcdctl get {key} on the master failed: {read.stderr.strip()}")
    prefix, plaintext, size = lines[0], int(lines[1] or 0), int(lines[2] or 0)
    if not size:
        raise pipeline.StepFailed(f"etcd holds nothing at {key}")
    if not prefix.startswith("k8s:enc:") or plaintext:
        raise pipeline.StepFailed(
            f"Secret {NAMESPACE}/{SECRET} is stored in plaintext in etcd: {key} begins "
            f"{prefix!r}, its value appears {plaintext} times"
        )
    return f"etcd's {key} ({size} bytes) begins {prefix[:30]!r}..., no plaintext"


# DNS lookups during day two --------------------------------------------------------------------


def lookup_loop(name: str) -> str:
    """The pod's command: look ``name`` up every 0.2 s until /counts/stop, counting in
    /counts/counts (resumed after a container restart); each failure logged with its time."""
    return (
        "f=/counts/counts; sent=0; failed=0; "
        '[ -s "$f" ] && read sent failed < "$f"; '
        "while [ ! -e /counts/stop ]; do sent=$((sent + 1)); "
        f"if ! getent hosts {name} >/dev/null; then failed=$((failed + 1)); "
        'echo "$(date -u +%T) lookup $sent of ' + name + ' failed"; fi; '
        'echo "$sent $failed" > "$f.new" && mv "$f.new" "$f"; sleep 0.2; done; '
        "exec sleep infinity"
    )


def lookups_manifest(image: str, name: str) -> dict:
    labels = {"app": LOOKUPS_APP}
    container = {
        "name": "lookups",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", lookup_loop(name)],
        "volumeMounts": [{"name": "counts", "mountPath": "/counts"}],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"namespace": NAMESPACE, "name": LOOKUPS, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [container],
                    "volumes": [{"name": "counts", "emptyDir": {}}],
                },
            },
        },
    }


def ready_nodes() -> set[str]:
    ready = (
        "get nodes -o jsonpath='{range .items[*]}{.metadata.name} "
        '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}\''
    )
    lines = [line.split() for line in kube.kubectl(ready).splitlines()]
    return {fields[0] for fields in lines if fields[1:] == ["True"]}


def lookup_pods() -> dict[str, str]:
    """pod -> node of the lookup pods Running and not being deleted."""
    listing = kube.kubectl(f"-n {NAMESPACE} get pods -l app={LOOKUPS_APP} -o json")
    return {
        pod["metadata"]["name"]: pod["spec"].get("nodeName", "")
        for pod in json.loads(listing)["items"]
        if pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")
    }


def counts_of(pod: str, stop: bool = False) -> tuple[int, int] | None:
    touch = "touch /counts/stop; sleep 1; " if stop else ""
    result = ssh(f"{kube.KUBECTL} -n {NAMESPACE} exec {pod} -- sh -c '{touch}cat /counts/counts'")
    fields = result.stdout.split()
    if result.returncode != 0 or len(fields) != 2:
        return None
    return int(fields[0]), int(fields[1])


class DnsLookups:
    """Lookups of nginx's service name from a pod on each minion, while ``what`` happens."""

    def __init__(self, what: str):
        self.what = what
        self.name = f"nginx.{NAMESPACE}.svc.{cluster_domain()}."  # absolute: no search list
        self.started: dict[str, str] = {}
        self.sent = self.failed = 0

    def start(self) -> None:
        smoke_image = kube.kubectl(
            f"-n {NAMESPACE} get rc nginx -o jsonpath='{{.spec.template.spec.containers[0].image}}'"
        ).strip()
        manifest = json.dumps(lookups_manifest(smoke_image, self.name))
        applied = ssh(f"printf '%s' {shlex.quote(manifest)} | {kube.KUBECTL} apply -f -")
        if applied.returncode != 0:
            raise pipeline.StepFailed(f"the DNS lookup DaemonSet: {applied.stderr.strip()}")
        minions = ready_nodes()  # a powered-off minion (the dead one removed) runs no pod
        deadline = time.monotonic() + LOOKUPS_WAIT
        while True:
            pods = lookup_pods()
            counting = {pod: node for pod, node in pods.items() if counts_of(pod)}
            if set(counting.values()) >= minions:
                self.started = counting
                return
            if time.monotonic() > deadline:
                missing = ", ".join(sorted(minions - set(counting.values())))
                raise pipeline.StepFailed(
                    f"no DNS lookup pod counting on {missing} after {LOOKUPS_WAIT} s"
                )
            time.sleep(2)

    def stop(self) -> str:
        """Counts of the pods still there, summed; the DaemonSet deleted. Fails when more
        than MAX_FAILED_SHARE of the lookups failed."""
        sent = failed = 0
        read = []
        for pod, node in sorted(self.started.items()):
            counts = counts_of(pod, stop=True)
            if counts is None:
                continue  # gone with its node (the removed minion)
            sent, failed = sent + counts[0], failed + counts[1]
            read.append(node.split(".")[0])
        failures = ""
        if failed:
            logs = [
                kube.kubectl(f"-n {NAMESPACE} logs {pod} --tail=3").strip().replace("\n", "; ")
                for pod in self.started
                if pod in lookup_pods()
            ]
            failures = f" (last failures: {' | '.join(logs)[-400:]})"
        kube.kubectl(f"-n {NAMESPACE} delete daemonset {LOOKUPS} --wait=false")
        self.sent, self.failed = sent, failed
        summary = (
            f"DNS lookups of {self.name} from pods on {', '.join(read) or 'no minion'}: "
            f"{sent} sent, {failed} failed{failures}"
        )
        if not sent or failed > MAX_FAILED_SHARE * sent:
            raise pipeline.StepFailed(f"during {self.what}, {summary}")
        return summary


# A changed setting rolls CoreDNS ---------------------------------------------------------------

ROLL_UPSTREAM = "192.168.122.1"  # the lab's bridge: no resolver there, and no traffic leaves
ROLL_WAIT = 180  # s, each rollout of CoreDNS


def coredns_template_hash() -> str:
    return kube.kubectl(
        "-n kube-system get deployment coredns -o jsonpath='{.spec.template.metadata.annotations}'"
    ).strip()


def coredns_rolled_out() -> None:
    result = ssh(
        f"{kube.KUBECTL} -n kube-system rollout status deployment/coredns --timeout={ROLL_WAIT}s",
        timeout=ROLL_WAIT + 30,
    )
    if result.returncode != 0:
        raise pipeline.StepFailed(f"CoreDNS's rollout: {(result.stderr or result.stdout).strip()}")


def coredns_rolls_without_a_failed_lookup(inventory: str) -> str:
    """dns_upstream set, then unset again, by cluster.py while pods on every minion look
    nginx's name up: CoreDNS rolls twice (its Corefile changed), and no lookup fails."""
    lookups = DnsLookups("CoreDNS's rollouts")
    lookups.start()
    try:
        before = coredns_template_hash()
        for step, data in (("set", (f"dns_upstream={ROLL_UPSTREAM}",)), ("unset", ())):
            pipeline.deploy(inventory, f"dns-roll-{step}", *data)
            coredns_rolled_out()
            if step == "set" and coredns_template_hash() == before:
                raise pipeline.StepFailed("dns_upstream changed, but CoreDNS's pods did not")
    finally:
        summary = lookups.stop()
    if lookups.failed:  # the goal: none at all
        raise pipeline.StepFailed(f"during CoreDNS's rollouts, {summary}")
    return f"CoreDNS rolled out twice (dns_upstream set, unset); {summary}"
