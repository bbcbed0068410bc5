"""Facts kubelab reads from hosts besides pyinfra's own."""

import shlex

from pyinfra.api import FactBase


class EtcdValue(FactBase):
    """
    The value stored under ``key`` in etcd at ``endpoint``, read with the etcd ``api`` version
    (2 or 3) the reader of that key uses; ``None`` when the key, etcdctl or etcd is missing.
    ``tls_args`` are extra etcdctl arguments (client certificates).
    """

    def command(self, endpoint, key, api=3, tls_args=""):
        if api == 2:
            get = f"get {shlex.quote(key)}"
        else:
            get = f"get {shlex.quote(key)} --print-value-only"
        etcdctl = f"ETCDCTL_API={api} etcdctl --endpoints={shlex.quote(endpoint)} {tls_args}"
        return f"! command -v etcdctl >/dev/null || {etcdctl} {get} 2>/dev/null || true"

    def process(self, output):
        value = "\n".join(output).strip()
        return value or None
