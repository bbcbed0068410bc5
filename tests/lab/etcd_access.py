"""One node's keys do not open etcd, on the lab's secure cluster (for e2e.py, after the switch
to ``secure``). Each function returns what it saw or raises StepFailed.

flanneld_kept_to_its_prefix: a minion's flanneld client certificate, taken to the master (the
minions have no etcdctl), reads flannel's config with etcdctl but is refused /registry/
(etcd's auth: "permission denied").

cluster_ca_certificates_refused: on a minion, its kubelet's and kube-proxy's client certificates
(the cluster CA's) are refused by etcd's TLS handshake, while its flanneld certificate, on the
same URL with the same curl, gets etcd's /health.
"""

import json
import re
import shlex
import subprocess

import pipeline

MASTER, MINION = "kubemaster", "kubeminion1"
FLANNEL_PKI = "/etc/flannel/pki"
FLANNELD = (f"{FLANNEL_PKI}/flanneld-etcd-client.crt", f"{FLANNEL_PKI}/flanneld-etcd-client.key")
FLANNEL_CONFIG = "/atomic.io/network/config"  # the lab's flannel_etcd_prefix (the default)
KUBECONFIGS = {
    "kubelet": "/etc/kubernetes/kubelet.kubeconfig",
    "kube-proxy": "/etc/kubernetes/kube-proxy.kubeconfig",
}
SSH_DEADLINE = 60  # s for one command over ssh (etcdctl and curl bound themselves well below)
ETCD_URL = '. /etc/default/etcd && printf %s "$ETCD_ADVERTISE_CLIENT_URLS"'


def remote(host: str, command: str, stdin: str = "") -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            [*pipeline.LAB, "ssh", host, command],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=SSH_DEADLINE,
        )
    except subprocess.TimeoutExpired:
        raise pipeline.StepFailed(f"{host}: {command!r} did not end in {SSH_DEADLINE} s") from None


def output(host: str, command: str, stdin: str = "") -> str:
    result = remote(host, command, stdin)
    if result.returncode != 0:
        raise pipeline.StepFailed(f"{host}: {command!r} failed: {result.stderr.strip()}")
    return result.stdout


def etcd_url() -> str:
    url = output(MASTER, ETCD_URL).strip()
    if not url.startswith("https://"):
        raise pipeline.StepFailed(f"{MASTER}: etcd advertises {url!r}, not https (secure?)")
    return url


def flanneld_kept_to_its_prefix(inventory: str) -> str:
    """A minion's flanneld key on the master's etcdctl: flannel's config yes, /registry/ no."""
    cert, key = (output(MINION, f"cat {path}") for path in FLANNELD)
    url = etcd_url()
    # the minion's pair (on stdin) in a private directory on the master, removed after
    script = (
        'd=$(mktemp -d); trap \'rm -rf "$d"\' EXIT; umask 077; cat > "$d/pair"; '
        'sed -n \'1,/END CERTIFICATE/p\' "$d/pair" > "$d/c"; '
        'sed -n \'/BEGIN.*PRIVATE KEY/,$p\' "$d/pair" > "$d/k"; '
        f"e() {{ ETCDCTL_API=3 etcdctl --endpoints={shlex.quote(url)} --dial-timeout=5s "
        f'--command-timeout=10s --cacert={FLANNEL_PKI}/ca.crt --cert="$d/c" --key="$d/k" '
        '"$@"; }; '
        f'config=$(e get {FLANNEL_CONFIG} --print-value-only 2>"$d/err"); echo "@@config $?"; '
        'printf "%s\\n" "$config" "$(tail -n 1 "$d/err")"; '
        "registry=$(e get /registry/ --prefix --keys-only --limit=1 2>&1); "
        'echo "@@registry $?"; printf "%s\\n" "$registry"'
    )
    found = output(MASTER, script, stdin=cert + key)
    pattern = r"^@@(\w+) (\d+)$\n(.*?)(?=^@@|\Z)"
    parts = {name: (rc, text) for name, rc, text in re.findall(pattern, found, re.M | re.S)}
    config, registry = parts.get("config", ("?", "")), parts.get("registry", ("?", ""))
    if config[0] != "0":
        problem = f"could not read {FLANNEL_CONFIG}: {config[1].strip()!r}"
        raise pipeline.StepFailed(f"{MINION}'s flanneld certificate {problem}")
    try:
        network = json.loads(config[1].partition("\n")[0])["Network"]
    except (ValueError, KeyError):
        problem = f"{FLANNEL_CONFIG} holds no network: {config[1].strip()!r}"
        raise pipeline.StepFailed(problem) from None
    refusal = registry[1].strip().splitlines()[-1:] or ["(nothing)"]
    if registry[0] == "0" or "permission denied" not in registry[1]:
        raise pipeline.StepFailed(
            f"{MINION}'s flanneld certificate was not refused /registry/ "
            f"(etcdctl exit {registry[0]}): {registry[1].strip()!r}"
        )
    return f"flannel's config read ({network}); /registry/ refused: {refusal[0]}"


def cluster_ca_certificates_refused(inventory: str) -> str:
    """A minion's kubelet and kube-proxy certificates refused by etcd, its flanneld's not."""
    url = shlex.quote(etcd_url() + "/health")
    curl = f"curl -sS --max-time 5 --cacert {FLANNEL_PKI}/ca.crt"
    seen = []
    for name, path in KUBECONFIGS.items():
        script = (
            "d=$(mktemp -d); trap 'rm -rf \"$d\"' EXIT; umask 077; "
            f"sed -n 's/^ *client-certificate-data: //p' {path} | base64 -d > \"$d/c\"; "
            f"sed -n 's/^ *client-key-data: //p' {path} | base64 -d > \"$d/k\"; "
            f'{curl} --cert "$d/c" --key "$d/k" {url} 2>&1; echo " rc=$?"'
        )
        answer = output(MINION, script).strip()
        if answer.endswith(" rc=0") or '"health":"true"' in answer.replace(" ", ""):
            raise pipeline.StepFailed(f"etcd answered {MINION}'s {name} certificate: {answer!r}")
        seen.append(f"{name} refused ({answer.rsplit(' rc=', 1)[-1]})")
    flanneld = f"{curl} --cert {FLANNELD[0]} --key {FLANNELD[1]} {url}"
    answer = output(MINION, f'{flanneld} 2>&1; echo " rc=$?"').strip()
    if not answer.endswith(" rc=0") or '"health":"true"' not in answer.replace(" ", ""):
        raise pipeline.StepFailed(f"etcd did not answer {MINION}'s flanneld: {answer!r}")
    return ", ".join(seen) + "; flanneld's certificate answered on the same URL"
