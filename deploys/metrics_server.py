"""metrics-server (modern profile, ``metrics_server``): resource metrics behind the apiserver's
aggregation layer (``kubectl top``, the HorizontalPodAutoscaler), applied from the master.

It scrapes each kubelet at the Node's InternalIP (the address kubelab gives ``--node-ip``)
and verifies the kubelet's serving certificate, which the cluster CA signed for that address
and the node's names (``certificates.deploy_kubelet_certificates``), with the CA every pod's
service account volume holds (the controller-manager's ``--root-ca-file``, the cluster CA).
"""

from .common import render
from .defaults import setting

MANIFEST = "/etc/kubernetes/addons/metrics-server.yaml"


def manifest() -> str:
    return render(
        MANIFEST, cluster_name=setting("cluster_name"), image=setting("metrics_server_image")
    )
