"""The components, one module each: etcd, flannel, the kubelet, the control plane."""
