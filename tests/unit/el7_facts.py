"""Facts about the CentOS 7 packages (kubernetes 1.5.2, etcd 3.3.11, flannel 0.7.1) that the el7
tests check kubelab's files against. Written for this project from the package contents listed
in the README's sources; the values are the packages' own defaults.
"""

# The active settings each package's config file ships with.
PACKAGE_DEFAULTS = {
    "/etc/etcd/etcd.conf": {
        "ETCD_DATA_DIR": "/var/lib/etcd/default.etcd",
        "ETCD_LISTEN_CLIENT_URLS": "http://localhost:2379",
        "ETCD_NAME": "default",
        "ETCD_ADVERTISE_CLIENT_URLS": "http://localhost:2379",
    },
    "/etc/kubernetes/config": {
        "KUBE_LOGTOSTDERR": "--logtostderr=true",
        "KUBE_LOG_LEVEL": "--v=0",
        "KUBE_ALLOW_PRIV": "--allow-privileged=false",
        "KUBE_MASTER": "--master=http://127.0.0.1:8080",
    },
    "/etc/kubernetes/apiserver": {
        "KUBE_API_ADDRESS": "--insecure-bind-address=127.0.0.1",
        "KUBE_ETCD_SERVERS": "--etcd-servers=http://127.0.0.1:2379",
        "KUBE_SERVICE_ADDRESSES": "--service-cluster-ip-range=10.254.0.0/16",
        "KUBE_ADMISSION_CONTROL": "--admission-control=NamespaceLifecycle,NamespaceExists,"
        "LimitRanger,SecurityContextDeny,ServiceAccount,ResourceQuota",
        "KUBE_API_ARGS": "",
    },
    "/etc/kubernetes/controller-manager": {"KUBE_CONTROLLER_MANAGER_ARGS": ""},
    "/etc/kubernetes/scheduler": {"KUBE_SCHEDULER_ARGS": ""},
    "/etc/kubernetes/kubelet": {
        "KUBELET_ADDRESS": "--address=127.0.0.1",
        "KUBELET_HOSTNAME": "--hostname-override=127.0.0.1",
        "KUBELET_API_SERVER": "--api-servers=http://127.0.0.1:8080",
        "KUBELET_POD_INFRA_CONTAINER": "--pod-infra-container-image="
        "registry.access.redhat.com/rhel7/pod-infrastructure:latest",
        "KUBELET_ARGS": "",
    },
    "/etc/kubernetes/proxy": {"KUBE_PROXY_ARGS": ""},
    "/etc/sysconfig/flanneld": {
        "FLANNEL_ETCD_ENDPOINTS": "http://127.0.0.1:2379",
        "FLANNEL_ETCD_PREFIX": "/atomic.io/network",
    },
}

# Each kube unit: the environment files it reads and the variables its ExecStart expands.
KUBE_UNITS = {
    "kube-apiserver": (
        ["/etc/kubernetes/config", "/etc/kubernetes/apiserver"],
        [
            "KUBE_LOGTOSTDERR",
            "KUBE_LOG_LEVEL",
            "KUBE_ETCD_SERVERS",
            "KUBE_API_ADDRESS",
            "KUBE_API_PORT",
            "KUBELET_PORT",
            "KUBE_ALLOW_PRIV",
            "KUBE_SERVICE_ADDRESSES",
            "KUBE_ADMISSION_CONTROL",
            "KUBE_API_ARGS",
        ],
    ),
    "kube-controller-manager": (
        ["/etc/kubernetes/config", "/etc/kubernetes/controller-manager"],
        ["KUBE_LOGTOSTDERR", "KUBE_LOG_LEVEL", "KUBE_MASTER", "KUBE_CONTROLLER_MANAGER_ARGS"],
    ),
    "kube-scheduler": (
        ["/etc/kubernetes/config", "/etc/kubernetes/scheduler"],
        ["KUBE_LOGTOSTDERR", "KUBE_LOG_LEVEL", "KUBE_MASTER", "KUBE_SCHEDULER_ARGS"],
    ),
    "kubelet": (
        ["/etc/kubernetes/config", "/etc/kubernetes/kubelet"],
        [
            "KUBE_LOGTOSTDERR",
            "KUBE_LOG_LEVEL",
            "KUBELET_API_SERVER",
            "KUBELET_ADDRESS",
            "KUBELET_PORT",
            "KUBELET_HOSTNAME",
            "KUBE_ALLOW_PRIV",
            "KUBELET_POD_INFRA_CONTAINER",
            "KUBELET_ARGS",
        ],
    ),
    "kube-proxy": (
        ["/etc/kubernetes/config", "/etc/kubernetes/proxy"],
        ["KUBE_LOGTOSTDERR", "KUBE_LOG_LEVEL", "KUBE_MASTER", "KUBE_PROXY_ARGS"],
    ),
}

# flanneld.service reads /etc/sysconfig/flanneld; flanneld-start expands these.
FLANNELD_VARIABLES = {"FLANNEL_ETCD_ENDPOINTS", "FLANNEL_ETCD_PREFIX", "FLANNEL_OPTIONS"}

# The kube user owns what kube-apiserver and kube-controller-manager read (User=kube).
KUBE_SERVICE_USER = "kube"
