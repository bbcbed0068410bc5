"""The text of a kubeconfig: one cluster (its API URL and CA), one user with a client
certificate and key, and the context joining them; the same input gives the same bytes."""

import base64
import json


def kubeconfig_text(
    cluster_name: str, server: str, user: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> str:
    """A kubeconfig for ``user`` on ``server`` (https), trusting the CA ``ca_pem``."""
    contexts = {f"{user}@{cluster_name}": cluster_name}
    return _kubeconfig({cluster_name: server}, contexts, user, ca_pem, cert_pem, key_pem)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _quote(value: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(value)


def contexts_text(
    servers: dict[str, str], user: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> str:
    """A kubeconfig for ``user`` with one cluster and one context per entry of ``servers``
    (name -> https URL), each named after its entry; the current context is the first."""
    contexts = {name: name for name in servers}
    return _kubeconfig(servers, contexts, user, ca_pem, cert_pem, key_pem)


def _kubeconfig(
    clusters: dict[str, str],
    contexts: dict[str, str],
    user: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
) -> str:
    """``clusters`` (name -> https URL, each trusting ``ca_pem``), ``contexts`` (name -> its
    cluster, each for ``user``; the first current) and the one ``user``."""
    for server in clusters.values():
        if not server.startswith("https://"):
            raise ValueError(f"kubeconfig server {server!r} must be an https:// URL")
    lines = ["apiVersion: v1", "kind: Config", "clusters:"]
    for name, server in clusters.items():
        lines += [
            f"- name: {_quote(name)}",
            "  cluster:",
            f"    certificate-authority-data: {_b64(ca_pem)}",
            f"    server: {_quote(server)}",
        ]
    lines.append("contexts:")
    for name, cluster in contexts.items():
        lines += [
            f"- name: {_quote(name)}",
            "  context:",
            f"    cluster: {_quote(cluster)}",
            f"    user: {_quote(user)}",
        ]
    lines += [
        f"current-context: {_quote(next(iter(contexts)))}",
        "users:",
        f"- name: {_quote(user)}",
        "  user:",
        f"    client-certificate-data: {_b64(cert_pem)}",
        f"    client-key-data: {_b64(key_pem)}",
    ]
    return "\n".join(lines) + "\n"
