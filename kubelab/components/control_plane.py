"""The master's kube services: kube-apiserver, kube-controller-manager, kube-scheduler (and on
the modern profile kube-proxy)."""

from pyinfra.api import deploy

from ..engine import packages
from ..engine.common import place, service
from ..pki import api_endpoints, api_tls, encryption, front_proxy
from ..pki.api_tls import api_url
from ..pki.certificates import MINION_KUBECONFIGS, deploy_master_certificates
from ..pki.service_account import deploy_service_account_key
from ..settings import topology
from ..settings.defaults import DEFAULTS, setting
from ..settings.profiles import profile
from .api_balancer import deploy_api_balancer
from .catalog import KUBE_MASTER_BINARIES
from .kube_proxy import deploy_kube_proxy
from .kube_services import install_kube_binaries, unit

EL7_CONFIGS = ("config", "apiserver", "controller-manager", "scheduler")


def kube_template_data() -> dict:
    """What the el7 /etc/kubernetes templates of either role need."""
    secure = api_tls.secure()
    return {
        "cluster_name": setting("cluster_name"),
        "etcd_url": topology.etcd_url(),
        "api_url": api_url(),
        "apiserver_insecure_bind_address": "127.0.0.1"
        if secure
        else setting("apiserver_insecure_bind_address"),
        "apiserver_tls_arguments": api_tls.apiserver_arguments(),
        "kubelet_arguments": f"--kubeconfig={MINION_KUBECONFIGS['kubelet']}" if secure else "",
        "proxy_arguments": f"--kubeconfig={MINION_KUBECONFIGS['kube-proxy']}" if secure else "",
        **{
            name: setting(name)
            for name in (
                "kube_log_level",
                "kube_allow_privileged",
                "apiserver_insecure_port",
                "service_cluster_ip_range",
                "admission_control",
                "service_account_key_file",
                "pod_infra_container_image",
            )
        },
    }


def el7_config(name: str, **extra):
    """/etc/kubernetes/<name> from its template."""
    return place(f"/etc/kubernetes/{name}", **kube_template_data(), **extra)


@deploy("Master services", data_defaults=DEFAULTS)
def deploy_master_services():
    if profile() == "el7":
        packages.install(["kubernetes-master"])
        config = {name: el7_config(name) for name in EL7_CONFIGS}
        key = deploy_service_account_key()
        tls = api_tls.deploy_apiserver_certificates() if api_tls.secure() else []
        service("kube-apiserver", changed=[config["config"], config["apiserver"], *key, *tls])
        service(
            "kube-controller-manager",
            changed=[config["config"], config["controller-manager"], *key],
        )
        service("kube-scheduler", changed=[config["config"], config["scheduler"]])
    else:
        deploy_modern_master_services()


def deploy_modern_master_services():
    binaries = install_kube_binaries(KUBE_MASTER_BINARIES)
    certificates = deploy_master_certificates()
    scheduler_config = place(
        "/etc/kubernetes/kube-scheduler.yaml", cluster_name=setting("cluster_name")
    )
    certificates["kube-scheduler"].append(scheduler_config)
    encryption_config = encryption.deploy_encryption_config()
    certificates["kube-apiserver"] += encryption_config
    certificates["kube-apiserver"] += front_proxy.deploy_front_proxy_certificates()
    names = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    apiserver = {
        "encryption_config": encryption.CONFIG if encryption_config else None,
        "advertise_address": topology.address(),
        "service_account_issuer": api_endpoints.service_account_issuer(),
        **front_proxy.apiserver_arguments(),
    }
    units = {name: unit(name, **(apiserver if name == "kube-apiserver" else {})) for name in names}
    for name in names:
        service(name, changed=[binaries[name], *certificates[name]], units=[units[name]])
    if topology.is_first_master():  # cluster-level work: once, after every apiserver restarted
        encryption.secrets_rewritten(encryption_config)
    # Before kube-proxy's kubeconfig points at it (several masters, no api_endpoint).
    deploy_api_balancer()
    # The master reaches service cluster IPs too: the apiserver calls webhooks and aggregated
    # APIs through them.
    deploy_kube_proxy()
