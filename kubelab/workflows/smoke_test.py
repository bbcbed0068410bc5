"""The smoke test's names (its namespace, objects and manifests), kubectl on the master, and
the shell its checks are made of: each check is one shell command that fails with one line,
``smoke test: ...``, and each wait is bounded. The steps: ``smoke_deploy``."""

from __future__ import annotations

from ..engine.clients import kubectl  # the upgrade imports it from here too
from ..settings.defaults import setting

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

# kubectl, and the shell building blocks ---------------------------------------------------


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


def answers(url: str, what: str, where: str) -> str:
    """Wait body: GET ``url`` from this host returns nginx's page."""
    return (
        f"page=$({CURL} {url} 2>&1) && printf '%s' \"$page\" | grep -q '{WELCOME}' || {{ "
        "detail=$(printf '%s\\n' \"$page\" | head -n 1 | cut -c1-200); "
        f'why="{what} does not answer nginx\'s page from {where} ($detail)"; return 1; }}'
    )
