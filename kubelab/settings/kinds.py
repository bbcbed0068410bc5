"""What kind of value a setting holds, and what keeps a value from being one.

Each ``*_problem`` function returns ``None`` for a good value, else what is wrong with it as a
phrase that follows "it" ("has an empty label"), for validation's one-line messages. Nothing
here reads data or hosts.
"""

import ipaddress
import posixpath
import re
from urllib.parse import urlsplit

LABEL_CHARACTERS = re.compile(r"[A-Za-z0-9-]+")
# v + semantic version; upstream's pre-releases (-alpha.1, -beta.2, -rc.3) only.
NUMBER = r"(?:0|[1-9]\d*)"
RELEASE = rf"v{NUMBER}\.{NUMBER}\.{NUMBER}"
VERSION = re.compile(rf"{RELEASE}(?:-(?:alpha|beta|rc)\.{NUMBER})?")
# flannel-io/cni-plugin tags its releases v1.9.1-flannel3 (and before 1.2, v1.1.2).
FLANNEL_CNI_VERSION = re.compile(rf"{RELEASE}(?:-flannel[1-9]\d*)?")
ADMISSION_LIST = re.compile(r"[A-Za-z]+(?:,[A-Za-z]+)*")


def dns_problem(value: str) -> str | None:
    """A DNS name: dot-separated labels of 1-63 letters, digits and '-', none starting or
    ending with '-', at most 253 characters in all."""
    if not value:
        return "is empty"
    if len(value) > 253:
        return f"is {len(value)} characters long (at most 253)"
    for label in value.split("."):
        if not label:
            return "has an empty label (two dots in a row, or a dot at an end)"
        if len(label) > 63:
            return f"has a label of {len(label)} characters ({label[:12]}...; at most 63)"
        if not LABEL_CHARACTERS.fullmatch(label):
            return f"has a label with a character other than letters, digits and '-' ({label!r})"
        if label.startswith("-") or label.endswith("-"):
            return f"has a label starting or ending with '-' ({label!r})"
    return None


def node_name_problem(value: str) -> str | None:
    """A Kubernetes object name (DNS-1123 subdomain): a DNS name in lower case."""
    problem = dns_problem(value)
    if problem is None and value != value.lower():
        return "has upper case letters (Kubernetes names are lower case)"
    return problem


def is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def url_problem(value: str) -> str | None:
    """An http or https URL naming a host (a DNS name or an IP address) and a valid port."""
    if re.search(r"\s", value):
        return "holds white space"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        scheme = f"the scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        return f"has {scheme}, not http:// or https://"
    if not parts.hostname:
        return "names no host"
    try:
        port = parts.port
    except ValueError:
        return "has a port that is not a number 1-65535"
    if port == 0:
        return "has the port 0 (ports are 1-65535)"
    if not is_ip(parts.hostname) and dns_problem(parts.hostname):
        return f"names the host {parts.hostname!r}, which {dns_problem(parts.hostname)}"
    return None


def remote_path_problem(value: str) -> str | None:
    """An absolute, normalised path of a file on a host."""
    if not value.startswith("/"):
        return "is not an absolute path (it starts with '/' on the host)"
    if re.search(r"\s", value):
        return "holds white space"
    if value.endswith("/"):
        return "ends with '/' (it names a file, not a directory)"
    if re.search(r"[^A-Za-z0-9_./@+=:,-]", value):
        return "holds a character a shell would read (only letters, digits and _./@+=:,-)"
    if posixpath.normpath(value) != value:
        return f"is not in normal form ({posixpath.normpath(value)!r} is)"
    return None


def endpoint_problem(value: str) -> str | None:
    """``host:port``: a DNS name or an IPv4 address, and a port 1-65535."""
    if re.search(r"\s", value):
        return "holds white space"
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        return "has no ':port'"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"has the port {port!r}, not a number 1-65535"
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return f"names the host {host!r}, which is no IPv4 address"
        return None
    if dns_problem(host):
        return f"names the host {host!r}, which {dns_problem(host)}"
    return None
