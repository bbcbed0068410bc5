"""The part of Kubernetes' conformance suite that `make test` runs (the whole suite is `make
conformance`): every [sig-network] [Conformance] test (DNS, Services, NodePort, session
affinity, EndpointSlices), and one test of each other SIG, chosen for what kubelab sets up
(the API reaching a webhook's pod, a rolling update, tokens, kubectl, events, pods, limits,
Secrets in volumes). None of them is [Serial]: they run in ginkgo's parallel part."""

import re
from pathlib import Path

import conformance

NETWORK = "[sig-network]"
ONE_PER_SIG = (
    "[sig-api-machinery] AdmissionWebhook [Privileged:ClusterAdmin] should be able to deny pod "
    "and configmap creation [Conformance]",
    "[sig-apps] Deployment RollingUpdateDeployment should delete old pods and create new ones "
    "[Conformance]",
    "[sig-architecture] Conformance Tests should have at least two untainted nodes [Conformance]",
    "[sig-auth] ServiceAccounts should mount an API token into pods [Conformance]",
    "[sig-cli] Kubectl client Kubectl describe should check if kubectl describe prints relevant "
    "information for rc and pods [Conformance]",
    "[sig-instrumentation] Events API should ensure that an event can be fetched, patched, "
    "deleted, and listed [Conformance]",
    "[sig-node] ConfigMap should be consumable via the environment [NodeConformance] [Conformance]",
    "[sig-scheduling] LimitRange should create a LimitRange with defaults and ensure pod has "
    "those defaults applied. [Conformance]",
    "[sig-storage] Secrets should be consumable from pods in volume [NodeConformance] "
    "[Conformance]",
)

# The suite's images (conformance_images.SUITE_IMAGES) the subset's tests run, read from their
# sources at v1.35.8 (k8s.io/kubernetes test/e2e, the tests and the helpers they call):
# - agnhost (2.59, imageutils.Agnhost): every [sig-network] test that runs a pod: dns.go's
#   probers and webserver (dns_common.go createDNSPod), service.go's backends and exec pods
#   (e2eservice.TestJig, e2epod.NewAgnhostPod, CreateExecPodOrFail, createPausePodDeployment),
#   networking.go's NetworkingTestConfig, hostport.go, proxy.go; the AdmissionWebhook test's
#   webhook (webhook.go deployWebhookAndService), the Deployment test's pods (apps/types.go
#   AgnhostImage), kubectl describe's controller (agnhost-primary-controller.json.in), the
#   Secrets volume test's mounttest (secrets_volume.go doSecretE2EWithoutMapping).
# - jessie-dnsutils (imageutils.JessieDnsutils): dns.go's second prober in every DNS test.
# - nginx (imageutils.Nginx): endpointslice.go and endpoints.go's pods.
# - busybox (imageutils.BusyBox): the ServiceAccounts token test, the ConfigMap env test.
# - pause (imageutils.GetPauseImageName): service_latency.go's deployment, the LimitRange
#   test's pods (limit_range.go newTestPod).
# None of them uses agnhost 2.55 (AgnhostPrev), nonewprivs, nautilus, sample-apiserver or etcd:
# `make test` builds and loads these five only, `make conformance` all of SUITE_IMAGES.
IMAGES = ("agnhost", "busybox", "nginx", "jessie-dnsutils", "pause")


def words(name: str) -> str:
    """A test's name with single spaces (some names hold two in a row)."""
    return " ".join(name.split())


def focus() -> str:
    """ginkgo's --focus (Go's regexp takes Python's escapes): the network SIG, the named tests,
    any run of spaces between their words."""
    texts = (NETWORK, *ONE_PER_SIG)
    return "|".join(r"\s+".join(map(re.escape, text.split())) for text in texts)


def chosen(name: str) -> bool:
    return name.startswith(NETWORK) or words(name) in ONE_PER_SIG


def outcome(tests: dict[str, dict]) -> tuple[int, int, list[str]]:
    """(passed, failed, problems) of the subset in the suite's reports: a chosen test that did
    not pass (failed, skipped, not run, or missing from the reports) is a problem."""
    picked = {name: test for name, test in tests.items() if chosen(name)}
    passed = sum(1 for test in picked.values() if test["result"] == "passed")
    problems = [
        f"{name}: {test['result']} {test['message']}".strip()
        for name, test in sorted(picked.items())
        if test["result"] != "passed"
    ]
    reported = {words(name) for name in tests}
    problems += [f"{name}: not in the reports" for name in ONE_PER_SIG if name not in reported]
    if not any(name.startswith(NETWORK) for name in tests):
        problems.append(f"no {NETWORK} test in the reports")
    return passed, len(problems), problems


def run(tools: dict[str, Path]) -> tuple[int, int, list[str]]:
    """The subset on the deployed lab cluster (reports in .lab/conformance/)."""
    conformance.run_suite(tools, focus(), parts=("parallel",))
    reports = sorted(conformance.OUT.glob("junit_*.xml"))
    return outcome(conformance.junit_results(reports))
