"""The smoke test's first-day checks (modern): what a user does on a new cluster's first day.

On the master, in the smoke test's namespace, after the reference setup's checks:

1. a pod on each minion (the ``probe`` DaemonSet of the smoke image: a drain leaves it be);
   from each, with the cluster DNS,
   ``nginx.kubelab-smoke.svc.<cluster_domain>`` resolves to nginx's cluster IP and
   ``kubernetes.default.svc.<cluster_domain>`` resolves; nginx answers its page by its short
   name (the pod's search path) and the apiserver accepts a connection by its name (bash's
   /dev/tcp: the image has no curl);
2. ``kubectl logs`` shows a request just made to the probe, ``kubectl exec`` runs in it, and
   ``kubectl port-forward`` carries a request from the master to it;
3. ``kubectl expose rc nginx --type=NodePort``: the node port answers nginx's page on every
   minion's address;
4. a Deployment (``web``) rolls out, then ``kubectl rollout restart`` rolls it again and
   ``kubectl rollout status`` sees the update complete.

Each wait is bounded by ``smoke_timeout`` and fails with one line naming what is not ready.
"""

from __future__ import annotations

import shlex

from ..settings import topology
from ..settings.defaults import setting
from .smoke_test import (
    MANIFESTS,
    NAMESPACE,
    RC,
    WELCOME,
    answers,
    run_or_fail,
    script,
    smoke_kubectl,
    timeout,
    wait_until,
)

PROBE = "probe"  # the DaemonSet
PROBE_APP = "kubelab-smoke-probe"  # its pods' label app=
PROBE_LABEL = f"app={PROBE_APP}"
NODE_PORT_SERVICE = "nginx-nodeport"
DEPLOYMENT = "web"
LOG_MARK = "/kubelab-smoke-logs"  # the path of the request kubectl logs must show
IN_POD_TIMEOUT = 5  # seconds, each name lookup or connection inside a pod


def fqdn(name: str) -> str:
    return f"{name}.svc.{setting('cluster_domain')}"


def in_pod_request(host: str, port: int, path: str = "/") -> str:
    """Shell run inside a pod: one HTTP/1.0 GET through bash's /dev/tcp, bounded."""
    get = f'exec 3<>/dev/tcp/{host}/{port} && printf "GET {path} HTTP/1.0\\r\\n\\r\\n" >&3'
    return f"timeout {IN_POD_TIMEOUT} bash -c {shlex.quote(get + ' && cat <&3')}"


def probes() -> str:
    """Shell: ``probes``, ``<pod>/<node>`` of each Running probe pod; fails (sets ``why``)
    unless every minion has one."""
    k = smoke_kubectl()
    nodes = " ".join(shlex.quote(topology.node_name(m)) for m in topology.minions())
    columns = "NAME:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase"
    return (
        f"listed=$({k} get pods -l {PROBE_LABEL} --no-headers -o custom-columns={columns} "
        '2>&1) || { why="kubectl get pods fails: $listed"; return 1; }; '
        'probes=$(printf \'%s\\n\' "$listed" | awk \'$3 == "Running" {print $1 "/" $2}\'); '
        f"for node in {nodes}; do "
        'printf \'%s\\n\' "$probes" | grep -q "/$node$" || '
        f'{{ why="no Running pod of the {PROBE} DaemonSet on node $node"; return 1; }}; done'
    )


def each_probe(checks: str) -> str:
    """Shell: ``checks`` for each probe pod (``$pod`` on ``$node``)."""
    return f"for entry in $probes; do pod=${{entry%/*}}; node=${{entry#*/}}; {checks} done"


def probes_check() -> str:
    """The probe DaemonSet applied; one Running pod of it on every minion."""
    return script(
        run_or_fail(f"{smoke_kubectl()} apply -f {MANIFESTS}/probe.yaml"),
        wait_until(probes(), timeout()),
    )


def dns_check() -> str:
    """From the probe pod on each minion: the names resolve (nginx's to its cluster IP), nginx
    answers by its short name, the apiserver accepts a connection by its name."""
    k = smoke_kubectl()
    nginx, api = fqdn(f"{RC}.{NAMESPACE}"), fqdn("kubernetes.default")
    lookup = f"timeout {IN_POD_TIMEOUT} getent hosts"
    where = "from pod $pod on $node,"
    connect = f"timeout {IN_POD_TIMEOUT} bash -c {shlex.quote(f'exec 3<>/dev/tcp/{api}/443')}"
    checks = (
        f'out=$({k} exec "$pod" -- {lookup} {nginx} 2>&1); '
        '[ "${out%% *}" = "$ip" ] || { '
        f"why=\"{where} {nginx} does not resolve to nginx's cluster IP $ip "
        '(${out:-no answer})"; return 1; }; '
        f'page=$({k} exec "$pod" -- {in_pod_request(RC, 80)} 2>&1); '
        f"printf '%s' \"$page\" | grep -q '{WELCOME}' || {{ "
        f"why=\"{where} http://{RC}/ (its short name) does not answer nginx's page "
        '($(printf \'%s\\n\' "$page" | head -n 1 | cut -c1-200))"; return 1; }; '
        f'out=$({k} exec "$pod" -- {lookup} {api} 2>&1) || {{ '
        f'why="{where} {api} does not resolve (${{out:-no answer}})"; return 1; }}; '
        f'out=$({k} exec "$pod" -- {connect} 2>&1) || {{ '
        f'why="{where} {api} accepts no connection on port 443 (${{out:-no answer}})"; '
        "return 1; };"
    )
    return script(
        f"ip=$({k} get service {RC} -o jsonpath='{{.spec.clusterIP}}' 2>&1) || "
        f'smoke_fail "kubectl get service {RC} fails: $ip";',
        wait_until(f"{probes()}; {each_probe(checks)}", timeout()),
    )


def kubectl_tools_check() -> str:
    """kubectl exec, logs and port-forward against the first minion's probe pod."""
    k = smoke_kubectl()
    seconds = timeout()
    exec_body = (
        f'out=$({k} exec "$pod" -- cat /etc/hostname 2>&1); [ "$out" = "$pod" ] || {{ '
        'why="kubectl exec $pod -- cat /etc/hostname answers ${out:-nothing}, not $pod"; '
        "return 1; }"
    )
    logs_body = (
        f'{k} exec "$pod" -- {in_pod_request("127.0.0.1", 80, LOG_MARK)} >/dev/null 2>&1; '
        f'out=$({k} logs "$pod" --tail=50 2>&1); '
        f"printf '%s' \"$out\" | grep -q 'GET {LOG_MARK}' || {{ "
        f'why="kubectl logs $pod does not show the request for {LOG_MARK} just made '
        '($(printf \'%s\\n\' "$out" | tail -n 1 | cut -c1-200))"; return 1; }'
    )
    forwarded = (
        'port=$(sed -n "s/^Forwarding from 127.0.0.1:\\([0-9]*\\) .*/\\1/p" "$pf_out" | '
        'head -n 1); [ -n "$port" ] || { why="kubectl port-forward $pod :80 forwards no '
        "port ($(head -c 200 \"$pf_out\" | tr '\\n' ' '))\"; return 1; }; "
        + answers("http://127.0.0.1:$port/", "kubectl port-forward $pod :80", "the master")
    )
    return script(
        wait_until(probes(), seconds),
        "set -- $probes; pod=${1%/*};",
        wait_until(exec_body, seconds),
        wait_until(logs_body, seconds),
        'pf_out=$(mktemp); trap \'kill "$pf" 2>/dev/null; rm -f "$pf_out"\' EXIT;',
        f'timeout {seconds + 10} {k} port-forward "pod/$pod" :80 >"$pf_out" 2>&1 </dev/null & '
        "pf=$!;",
        wait_until(forwarded, seconds),
    )


def node_port_check() -> str:
    """nginx exposed on a node port (once); it answers on every minion's address."""
    k = smoke_kubectl()
    expose = f"{k} expose rc {RC} --name={NODE_PORT_SERVICE} --type=NodePort --port=80"
    parts = [
        f"{k} get service {NODE_PORT_SERVICE} >/dev/null 2>&1 || {{ {run_or_fail(expose)} }};",
        f"port=$({k} get service {NODE_PORT_SERVICE} -o jsonpath='{{.spec.ports[0].nodePort}}' "
        f'2>&1) || smoke_fail "kubectl get service {NODE_PORT_SERVICE} fails: $port";',
    ]
    for minion in topology.minions():
        url = f"http://{topology.address(minion)}:$port/"
        what = f"node port $port of service {NODE_PORT_SERVICE} on {minion.name} ({url})"
        parts.append(wait_until(answers(url, what, "the master"), timeout()))
    return script(*parts)


def rollout_check() -> str:
    """The web Deployment applied and rolled out; restarted, and the new rollout complete."""
    k = smoke_kubectl()
    seconds = timeout()
    status = f"{k} rollout status deployment/{DEPLOYMENT} --timeout={seconds}s"
    return script(
        run_or_fail(f"{k} apply -f {MANIFESTS}/web-deployment.yaml"),
        run_or_fail(status),
        run_or_fail(f"{k} rollout restart deployment/{DEPLOYMENT}"),
        run_or_fail(status),
    )
