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

import ipaddress
import shlex
from typing import NamedTuple

from pyinfra import host, logger
from pyinfra.api import StringCommand, deploy
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files, python, server

from . import callstack, etcd_tls, once, topology
from .api_tls import APISERVER_FILES
from .certificates import PKI, apiserver_url
from .clients import kubectl  # the upgrade imports it from here too
from .common import step, template
from .defaults import DEFAULTS, setting
from .profiles import profile
from .validation import validate_inventory

MANIFESTS = "/etc/kubernetes/smoke"
NAMESPACE = "kubelab-smoke"
OWNER_LABEL = ("kubelab", "smoke-test")  # on the namespace: the test made it
RC = "nginx"
SELECTOR = "app=nginx"
REPLICAS = 3
TOKEN_POD = "kubelab-smoke-token"
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
BOGUS_TOKEN = "kubelab-smoke-not-a-token"
WELCOME = "Welcome to nginx"
FLANNEL_SUBNET_FILE = "/run/flannel/subnet.env"
INTERVAL = 1  # seconds between two tries of a check
CURL = "curl -sS --connect-timeout 2 --max-time 5"
# Columns of `kubectl get pods` the checks read: values without spaces, <none> when unset.
POD_COLUMNS = (
    "NAME:.metadata.name,NODE:.spec.nodeName,PHASE:.status.phase,IP:.status.podIP,"
    "DELETING:.metadata.deletionTimestamp"
)
# A pod being deleted still reads Running (its preStop, its grace period): it is not counted.
SERVING = '$3 == "Running" && $4 != "<none>" && $5 == "<none>"'
# Prints its arguments as one line, 'smoke test: ...', on stderr, and fails the command.
PRELUDE = (
    "smoke_fail() { printf 'smoke test: %s\\n' "
    "\"$(printf '%s' \"$*\" | tr '\\n' ' ' | cut -c1-600)\" >&2; exit 1; }; "
)

# Shell building blocks -------------------------------------------------------------------


def smoke_kubectl() -> str:
    """kubectl() in the smoke test's namespace: every command the test runs."""
    return f"{kubectl()} -n {NAMESPACE}"


def timeout() -> int:
    return setting("smoke_timeout")


def script(*parts: str) -> str:
    """One shell command of ``parts``, with ``smoke_fail`` defined."""
    return PRELUDE + " ".join(part.strip() for part in parts)


def wait_until(body: str, seconds: int) -> str:
    """Shell: ``body`` (which sets ``why`` when it fails) every INTERVAL seconds until it
    succeeds; after ``seconds``, one line ``smoke test: <why> (waited N s)`` and failure."""
    body = body.strip().rstrip(";")
    return (
        f"smoke_check() {{ {body}; }}; "
        f"end=$(( $(date +%s) + {seconds} )); why='not checked'; "
        f'until smoke_check; do if [ "$(date +%s)" -ge "$end" ]; then '
        f'smoke_fail "$why (waited {seconds} s)"; fi; sleep {INTERVAL}; done;'
    )


def run_or_fail(command: str) -> str:
    """Shell: ``command``; on failure one line naming it (kubectl without its credentials
    flags), with its output."""
    shown = command.replace(kubectl(), "kubectl")
    return f'out=$({command} 2>&1) || smoke_fail "{shown} fails: $out";'


def list_pods(k: str) -> str:
    return f"{k} get pods -l {SELECTOR} --no-headers -o custom-columns={POD_COLUMNS}"


def pods_running(k: str, count_var: str = "count") -> str:
    """Shell: ``pods`` (the nginx pods), ``running`` (``name node`` of those Running with an
    IP) and ``$count_var``; fails (sets ``why``) when kubectl does."""
    return (
        f'pods=$({list_pods(k)} 2>&1) || {{ why="kubectl get pods fails: $pods"; return 1; }}; '
        "running=$(printf '%s\\n' \"$pods\" | "
        f"awk '{SERVING} {{print $1, $2}}'); "
        f"{count_var}=$(printf '%s\\n' \"$running\" | grep -c .);"
    )


def not_running(k: str) -> str:
    """Shell: ``states``, the nginx pods that do not run, with kubectl's STATUS column."""
    return (
        f"states=$({k} get pods -l {SELECTOR} --no-headers 2>&1 | "
        'awk \'$3 != "Running" {printf "%s%s %s", sep, $1, $3; sep = ", "}\');'
    )


# 1. Nodes -------------------------------------------------------------------------------


def nodes_ready_check() -> str:
    k = smoke_kubectl()
    names = " ".join(shlex.quote(topology.node_name(minion)) for minion in topology.minions())
    ready = '{.status.conditions[?(@.type=="Ready")]'
    body = (
        f'nodes=$({k} get nodes --no-headers 2>&1) || {{ why="kubectl get nodes fails: '
        '$nodes"; return 1; }; '
        f"for node in {names}; do "
        "status=$(printf '%s\\n' \"$nodes\" | awk -v node=\"$node\" '$1 == node {print $2}'); "
        '[ "$status" = Ready ] && continue; '
        f"detail=$({k} get node \"$node\" -o jsonpath='{ready}.reason}}: {ready}.message}}' "
        "2>&1); "
        'why="node $node is not Ready (${status:-not registered}: $detail)"; return 1; done'
    )
    return script(wait_until(body, timeout()))


# The namespace ------------------------------------------------------------------------------


def namespace_step() -> str:
    """Create the namespace, labelled as the smoke test's, unless it exists; refuse one that
    exists without the label (someone else's)."""
    k = smoke_kubectl()
    key, value = OWNER_LABEL
    return script(
        f"{k} get namespace {NAMESPACE} >/dev/null 2>&1 || {{ "
        + run_or_fail(f"{k} create namespace {NAMESPACE}")
        + " "
        + run_or_fail(f"{k} label namespace {NAMESPACE} {key}={value}")
        + " };",
        f"owner=$({k} get namespace {NAMESPACE} -o jsonpath='{{.metadata.labels.{key}}}' 2>&1);",
        f'[ "$owner" = {value} ] || smoke_fail "namespace {NAMESPACE} exists without the label '
        f"{key}={value}: it is not the smoke test's, which touches nothing it did not make "
        f'(delete or rename that namespace)";',
    )


# 2. The default service account and its token ------------------------------------------


def service_account_check() -> str:
    k = smoke_kubectl()
    body = (
        f'out=$({k} get serviceaccount default 2>&1) || {{ why="the default service account '
        'does not exist (kube-controller-manager creates it): $out"; return 1; }'
    )
    if profile() == "el7":  # kubernetes 1.5 keeps each account's token in a secret
        body += (
            f"; secrets=$({k} get serviceaccount default -o jsonpath='{{.secrets[*].name}}' "
            '2>&1); [ -n "$secrets" ] || { why="the default service account has no token '
            'secret (kube-controller-manager makes it with --service-account-private-key-file)"'
            "; return 1; }"
        )
    return script(wait_until(body, timeout()))


def api_tls() -> tuple[str, str]:
    """(URL of the apiserver's TLS port, curl's TLS options) for a check from the master."""
    if profile() == "el7" and not etcd_tls.enabled(topology.master()):
        # kubernetes 1.5 serves its TLS port with a self-signed certificate of its own.
        return f"https://{topology.master_address()}:{setting('apiserver_port')}", "-k"
    ca = APISERVER_FILES["ca"] if profile() == "el7" else f"{PKI}/ca.crt"
    return apiserver_url(), f"--cacert {ca}"


def bearer_curl(token: str, url: str, tls: str) -> str:
    """Shell: the HTTP status of GET ``url`` with ``token`` (a shell word). The header travels
    on curl's stdin (printf is a shell builtin): the token is on no command line."""
    return (
        f"printf 'header = \"Authorization: Bearer %s\"\\n' {token} | "
        f"curl -s -o /dev/null -w '%{{http_code}}' --max-time 10 {tls} -K - {url}"
    )


def token_check() -> str:
    """The token pod Running, its token read and accepted by the apiserver; the pod deleted."""
    k = smoke_kubectl()
    url, tls = api_tls()
    api = f"{url}/api"
    manifest = f"{MANIFESTS}/token-pod.yaml"
    nowait = " --wait=false" if profile() == "modern" else ""
    running = (
        f"phase=$({k} get pod {TOKEN_POD} -o jsonpath='{{.status.phase}}' 2>&1); "
        '[ "$phase" = Running ] || { '
        f"status=$({k} get pod {TOKEN_POD} --no-headers 2>&1 | awk '{{print $3}}'); "
        f'why="pod {TOKEN_POD} is not Running ($status)"; return 1; }}'
    )
    with_token = bearer_curl('"$token"', api, tls)
    authenticated = (
        f"token=$({k} exec {TOKEN_POD} -- cat {TOKEN_PATH} 2>/dev/null); "
        '[ -n "$token" ] || { '
        # stderr only: the token itself, if any, goes to /dev/null
        f"detail=$({k} exec {TOKEN_POD} -- cat {TOKEN_PATH} 2>&1 >/dev/null); "
        f'why="pod {TOKEN_POD} has no service-account token at {TOKEN_PATH} ($detail)"; '
        "return 1; }; "
        f"code=$({with_token} 2>/dev/null); "
        '[ "$code" = 200 ] || { '
        f"why=\"the default service account's token does not authenticate: GET {api} with it "
        'answers HTTP $code, not 200"; return 1; }'
    )
    gone = (
        f'! {k} get pod {TOKEN_POD} >/dev/null 2>&1 || {{ why="pod {TOKEN_POD} is still '
        'there after kubectl delete"; return 1; }'
    )
    return script(
        f"{k} get pod {TOKEN_POD} >/dev/null 2>&1 || {{ {run_or_fail(f'{k} create -f {manifest}')}"
        " };",
        wait_until(running, timeout()),
        wait_until(authenticated, timeout()),
        "unset token;",
        f"code=$({bearer_curl(BOGUS_TOKEN, api, tls)} 2>/dev/null);",
        f'[ "$code" = 401 ] || smoke_fail "GET {api} with a made-up token answers HTTP $code, '
        'not 401: the 200 with the real token proves nothing";',
        run_or_fail(f"{k} delete pod {TOKEN_POD}{nowait}"),
        wait_until(gone, timeout()),
    )


# 3. The ReplicationController ----------------------------------------------------------


def spread() -> int:
    """On how many nodes the nginx pods must run: two, when there are two minions or more."""
    return min(2, len(topology.minions()))


def replicas_check() -> str:
    k = smoke_kubectl()
    body = (
        pods_running(k) + f' if [ "$count" -ne {REPLICAS} ]; then {not_running(k)} '
        f'why="nginx has $count Running pods, not {REPLICAS} (${{states:-no other pods}})"; '
        "return 1; fi"
    )
    if spread() > 1:
        body += (
            "; nodes=$(printf '%s\\n' \"$running\" | awk '{print $2}' | sort -u); "
            f'[ "$(printf \'%s\\n\' "$nodes" | grep -c .)" -ge {spread()} ] || {{ '
            f"why=\"nginx's {REPLICAS} pods all run on $nodes (expected them on at least "
            f'{spread()} minions)"; return 1; }}'
        )
    return script(wait_until(body, timeout()))


# 4. The service, and what the master found for the other hosts ----------------------------


def expose() -> str:
    k = smoke_kubectl()
    return script(
        f"{k} get service {RC} >/dev/null 2>&1 || {{ "
        f"out=$({k} expose rc {RC} --port=80 2>&1) || "
        f'smoke_fail "kubectl expose rc {RC} --port=80 fails: $out"; }}'
    )


def listing() -> str:
    """Prints ``service <cluster IP> <port>`` and ``pod <name> <node> <IP>`` per Running pod."""
    k = smoke_kubectl()
    return script(
        f"service=$({k} get service {RC} -o jsonpath='{{.spec.clusterIP}} "
        f"{{.spec.ports[0].port}}' 2>&1) || smoke_fail \"kubectl get service {RC} fails: "
        '$service";',
        'set -- $service; [ -n "$1" ] && [ "$1" != None ] && [ -n "$2" ] || '
        f'smoke_fail "service {RC} has no cluster IP and port ($service)";',
        'echo "service $1 $2";',
        f'pods=$({list_pods(k)} 2>&1) || smoke_fail "kubectl get pods fails: $pods";',
        f"printf '%s\\n' \"$pods\" | awk '{SERVING} {{print \"pod\", $1, $2, $4}}'",
    )


class Pod(NamedTuple):
    name: str
    node: str
    ip: str


class Listing(NamedTuple):
    cluster_ip: str
    port: str
    pods: list[Pod]


def parse_listing(lines: list[str]) -> Listing | None:
    """What the master's listing printed; None without a service line."""
    service, pods = None, []
    for line in lines:
        fields = line.split()
        if fields[:1] == ["service"] and len(fields) == 3:
            service = fields[1:]
        elif fields[:1] == ["pod"] and len(fields) == 4:
            pods.append(Pod(*fields[1:]))
    return Listing(service[0], service[1], pods) if service else None


def answers(url: str, what: str, where: str) -> str:
    """Wait body: GET ``url`` from this host returns nginx's page."""
    return (
        f"page=$({CURL} {url} 2>&1) && printf '%s' \"$page\" | grep -q '{WELCOME}' || {{ "
        "detail=$(printf '%s\\n' \"$page\" | head -n 1 | cut -c1-200); "
        f'why="{what} does not answer nginx\'s page from {where} ($detail)"; return 1; }}'
    )


def parse_subnet_env(text: str) -> ipaddress.IPv4Network | None:
    for line in text.splitlines():
        name, _, value = line.strip().partition("=")
        if name == "FLANNEL_SUBNET":
            try:
                return ipaddress.ip_interface(value.strip().strip("\"'")).network
            except ValueError:
                return None
    return None


def lease_problem(found: Listing, node: str, subnet_env: str | None) -> str | None:
    """Why the nginx pods on ``node`` do not all have IPs inside its flannel lease."""
    lease = parse_subnet_env(subnet_env or "")
    if lease is None:
        return f"node {node} has no flannel lease (FLANNEL_SUBNET in {FLANNEL_SUBNET_FILE})"
    for pod in found.pods:
        if pod.node == node and ipaddress.ip_address(pod.ip) not in lease:
            return (
                f"pod {pod.name} on node {node} has IP {pod.ip}, outside the node's flannel "
                f"lease {lease} ({FLANNEL_SUBNET_FILE})"
            )
    return None


def host_checks(found: Listing, where: str, node: str | None, seconds: int) -> str:
    """The checks from one host: the service's cluster IP; from a minion (``node``) also every
    nginx pod on another node, by pod IP."""
    service = f"http://{found.cluster_ip}:{found.port}/"
    parts = [wait_until(answers(service, f"service {RC} ({service})", where), seconds)]
    if node is not None:
        for pod in found.pods:
            if pod.node != node:
                url = f"http://{pod.ip}:80/"
                what = f"nginx pod {pod.name} ({url} on {pod.node})"
                parts.append(wait_until(answers(url, what, where), seconds))
    return script(*parts)


def _connector_arguments(host) -> dict:
    """The operation's connector arguments (_sudo, ...), for commands a python.call runs."""
    arguments = host.current_op_global_arguments or {}
    return {key: arguments[key] for key in CONNECTOR_ARGUMENT_KEYS if key in arguments}


def _failed(host, message: str) -> bool:
    host.log_styled(message, log_func=logger.error, fg="red")
    return False


def _run(host, command: str):
    return host.run_shell_command(StringCommand(command), **_connector_arguments(host))


def check_from_host(state, host, where: str, node: str | None, minions: int, seconds: int):
    """python.call: steps 4 and 5 on this host (``node``: the minion's node name, None on the
    master), from what the master's listing printed."""
    listing_op = once.run_cache("smoke", state).get("listing")
    found = None
    if listing_op is not None and listing_op.is_complete() and listing_op.did_succeed():
        found = parse_listing(listing_op.stdout_lines)
    if found is None:
        return _failed(
            host,
            f"smoke test: nothing checked from {where}: the master's part of the smoke test "
            "failed or did not run (see its error)",
        )
    if node is not None:
        ok, output = _run(host, f"cat {FLANNEL_SUBNET_FILE}")
        problem = lease_problem(found, node, output.stdout if ok else None)
        if problem:
            return _failed(host, f"smoke test: {problem}")
        others = [pod for pod in found.pods if pod.node != node]
        if not others and minions > 1:
            return _failed(host, f"smoke test: no nginx pod runs on another node than {node}")
    ok, output = _run(host, host_checks(found, where, node, seconds))
    if not ok:
        lines = output.stderr_lines or [f"smoke test: the checks from {where} failed"]
        for line in lines:
            host.log_styled(line, log_func=logger.error, fg="red")
        return False
    return True


# 6. A deleted pod replaced ---------------------------------------------------------------


def replacement_check() -> str:
    """Delete an nginx pod on the node that runs most of them; wait for its replacement."""
    k = smoke_kubectl()
    nowait = " --wait=false" if profile() == "modern" else ""
    pick = (
        f"victim=$({list_pods(k)} 2>/dev/null | awk '{SERVING} "
        "{n[$2]++; if (n[$2] > most) {most = n[$2]; pod = $1}} END {print pod}');"
    )
    body = (
        pods_running(k)
        + ' if printf \'%s\\n\' "$pods" | awk -v pod="$victim" \'$1 == pod {found = 1} '
        "END {exit !found}'; then "
        'why="the deleted nginx pod $victim is still there"; return 1; fi; '
        f'[ "$count" -eq {REPLICAS} ] || {{ {not_running(k)} '
        f'why="the ReplicationController did not replace the deleted nginx pod $victim: '
        f'$count Running pods, not {REPLICAS} (${{states:-no other pods}})"; return 1; }}'
    )
    return script(
        pick,
        '[ -n "$victim" ] || smoke_fail "no Running nginx pod to delete";',
        f'out=$({k} delete pod "$victim"{nowait} 2>&1) || '
        'smoke_fail "kubectl delete pod $victim fails: $out";',
        wait_until(body, timeout()),
    )


def cleanup() -> str:
    """The namespace deleted, and with it everything the smoke test made (modern: waiting,
    bounded, until it is gone, so that a next run can make it again)."""
    wait = f" --timeout={timeout()}s" if profile() == "modern" else ""
    return script(
        run_or_fail(f"{smoke_kubectl()} delete namespace {NAMESPACE} --ignore-not-found{wait}")
    )


# The deploy --------------------------------------------------------------------------------


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
    """modern: what a user does on the first day (deploys/smoke_first_day.py)."""
    from . import smoke_first_day as day

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
    callstack.deploy_file_is_no_module()
    validate_inventory()
    if not topology.is_cluster_host():  # validation names it
        return
    master, minion = topology.is_master(), topology.is_minion()
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
        once.run_cache("smoke")["listing"] = listed
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
