"""metrics-server (modern profile, ``metrics_server``): resource metrics behind the apiserver's
aggregation layer (``kubectl top``, the HorizontalPodAutoscaler), applied from the master.

Both of its TLS hops are verified:
- it scrapes each kubelet at the Node's InternalIP (the address kubelab gives ``--node-ip``)
  and verifies the kubelet's serving certificate, which the cluster CA signed for that address
  and the node's names (``certificates.deploy_kubelet_certificates``), with the CA every pod's
  service account volume holds (the controller-manager's ``--root-ca-file``, the cluster CA);
- the apiserver verifies metrics-server's serving certificate, which the cluster CA signed for
  its Service's name (``metrics-server.kube-system.svc``, the name the aggregator checks): the
  APIService's ``caBundle`` is the cluster CA. The certificate and its key reach the pod as a
  Secret of the manifest (which is why the master keeps manifests in a directory only root
  enters); a new certificate rolls the Deployment.
"""

import base64
import hashlib

from ..engine.common import render
from ..pki.certificates import cluster_pki
from ..settings.defaults import setting

MANIFEST = "/etc/kubernetes/addons/metrics-server.yaml"
DEPLOYMENT = "metrics-server"  # in kube-system, its pods labelled POD_SELECTOR
POD_SELECTOR = "k8s-app=metrics-server"
SERVICE_NAMES = [
    "metrics-server.kube-system.svc",
    "metrics-server.kube-system",
    "metrics-server",
]


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def manifest() -> str:
    pki = cluster_pki()
    cert, key = pki.server_cert("metrics-server", SERVICE_NAMES[0], SERVICE_NAMES)
    return render(
        MANIFEST,
        cluster_name=setting("cluster_name"),
        image=setting("metrics_server_image"),
        tls_crt=b64(cert),
        tls_key=b64(key),
        tls_sha256=hashlib.sha256(cert).hexdigest(),
        ca_bundle=b64(pki.ca_cert_pem),
    )
