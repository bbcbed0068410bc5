"""The aggregation layer's identities (modern profile): a front-proxy CA of its own and the
apiserver's front-proxy client certificate.

The apiserver proxies a request for an aggregated API (metrics-server's metrics.k8s.io) with
the front-proxy client certificate and the user in ``X-Remote-*`` headers; the extension API
server believes those headers only from a client certificate of the front-proxy CA named
``front-proxy-client``. A CA of its own, as kubeadm has: a certificate of the cluster CA must
never be able to claim to speak for another user.

The CA is kept beside the cluster's, in ``<pki_dir>/front-proxy`` (0700), issued and reused like
the cluster PKI; created only while the master holds no front-proxy CA yet (a lost directory
stops the run, as a lost cluster CA does).
"""

from pyinfra.facts.files import File

from .. import engine
from ..settings import topology
from ..settings.defaults import setting, setting_error
from .certificates import PKI, install, pki_directory
from .pki import ClusterPKI, PKIError, PKIMissing

CA_CERT = f"{PKI}/front-proxy-ca.crt"
CLIENT_CERT = f"{PKI}/front-proxy-client.crt"
CLIENT_KEY = f"{PKI}/front-proxy-client.key"
CLIENT_NAME = "front-proxy-client"
DIRECTORY = "front-proxy"


def front_proxy_pki() -> ClusterPKI:
    master = topology.master()
    found = engine.fact(File, master, path=CA_CERT)
    directory = pki_directory() / DIRECTORY

    def opened():
        return ClusterPKI.open(
            directory, create=not found, cluster_name=f"{setting('cluster_name')}-front-proxy"
        )

    try:
        return engine.per_run(("front-proxy pki", str(directory), bool(found)), opened)
    except PKIMissing:
        raise setting_error(
            "pki_dir",
            master,
            f"{directory} holds no front-proxy CA, but this master already has one ({CA_CERT}):"
            " restore the directory from your backup; kubelab will not mint a new one",
        ) from None
    except PKIError as error:
        raise setting_error("pki_dir", master, str(error)) from None


def apiserver_arguments() -> dict:
    """The apiserver's flags for the aggregation layer (its unit template's variables)."""
    return {
        "requestheader_client_ca_file": CA_CERT,
        "requestheader_allowed_names": CLIENT_NAME,
        "proxy_client_cert_file": CLIENT_CERT,
        "proxy_client_key_file": CLIENT_KEY,
    }


def deploy_front_proxy_certificates() -> list:
    """The front-proxy CA and client certificate on the master; returns their steps."""
    pki = front_proxy_pki()
    cert, key = pki.client_cert(CLIENT_NAME, CLIENT_NAME)
    installed = install({CA_CERT: pki.ca_cert_pem, CLIENT_CERT: cert, CLIENT_KEY: key})
    return list(installed.values())
