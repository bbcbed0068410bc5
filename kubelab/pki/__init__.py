"""The PKI and secrets: the local CA, certificates, keys, kubeconfigs on hosts."""
