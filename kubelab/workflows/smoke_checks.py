"""The smoke test's checks on the master (see ``smoke_deploy``), one shell command each: in
the order of the steps, bounded by ``smoke_timeout``, in the test's own namespace."""

from __future__ import annotations

import shlex

from ..pki import etcd_tls
from ..pki.api_tls import APISERVER_FILES
from ..pki.certificates import PKI, apiserver_url
from ..settings import topology
from ..settings.defaults import setting
from ..settings.profiles import profile
from .smoke_test import (
    BOGUS_TOKEN,
    MANIFESTS,
    NAMESPACE,
    OWNER_LABEL,
    RC,
    REPLICAS,
    SERVING,
    TOKEN_PATH,
    TOKEN_POD,
    list_pods,
    not_running,
    pods_running,
    run_or_fail,
    script,
    smoke_kubectl,
    timeout,
    wait_until,
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
