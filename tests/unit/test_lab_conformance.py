"""make conformance's pieces that run without a lab: the summary of ginkgo's JUnit reports, the
KUBE_TEST_REPO_LIST file and the image names it gives, the e2e.test and ginkgo builds."""

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lab"))
import builds  # noqa: E402
import conformance  # noqa: E402
import conformance_images  # noqa: E402
import mirror  # noqa: E402

# Two reports shaped like ginkgo v2's JUnit (reporters/junit_report.go) as e2e.test writes them
# (junit_<prefix>01.xml): the suite's setup nodes as testcases, specs named "[It] <full text>", a
# status attribute, skipped specs with "skipped" (left out by the filters) or "skipped - <why>"
# (skipped while running).
SAMPLES = Path(__file__).resolve().parent / "conformance_junit"
PARALLEL = (SAMPLES / "junit_parallel_01.xml").read_text()
SERIAL = (SAMPLES / "junit_serial_01.xml").read_text()


def reports(tmp_path):
    (tmp_path / "junit_parallel_01.xml").write_text(PARALLEL)
    (tmp_path / "junit_serial_01.xml").write_text(SERIAL)
    return tmp_path


def test_the_summary_counts_each_conformance_test_once_by_its_most_telling_result(tmp_path):
    tests = conformance.junit_results(sorted(reports(tmp_path).glob("junit_*.xml")))
    # setup nodes and tests outside [Conformance] are not counted
    assert len(tests) == 6
    # run in the serial part, left out of the parallel one: passed
    serial = "[sig-apps] Daemon set [Serial] should rollback without unnecessary restarts "
    assert tests[serial + "[Conformance]"]["result"] == "passed"
    summary = conformance.summarize(tests, {"parallel": 300.5, "serial": 40.0})
    assert summary["totals"] == {"not run": 0, "skipped": 1, "passed": 3, "failed": 2}
    assert summary["per_sig"]["sig-network"] == {
        "not run": 0,
        "skipped": 0,
        "passed": 1,
        "failed": 1,
    }
    assert summary["per_sig"]["sig-node"]["failed"] == 1  # panicked counts as failed
    assert summary["skipped"] == {
        "[sig-architecture] Conformance Tests should have at least two untainted nodes "
        "[Conformance]": "Requires at least 2 nodes"
    }


def test_the_summary_files_say_passed_failed_skipped_per_sig_and_the_wall_time(tmp_path):
    text = conformance.write_summary(reports(tmp_path), {"parallel": 3725.0}, "v1.35.8")
    first = text.splitlines()[0]
    assert first == (
        "conformance v1.35.8: 3 passed, 2 failed, 1 skipped, 0 not run, of 6; "
        "wall time parallel 1h02m05s"
    )
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line[:4] == "sig-"}
    assert rows["sig-apps"] == ["1", "0", "0", "0"] and rows["sig-network"] == ["1", "1", "0", "0"]
    assert "  [sig-node] Pods should be updated [NodeConformance] [Conformance]" in text
    assert (tmp_path / "summary.json").exists() and (tmp_path / "summary.txt").read_text() == text


def test_tests_left_out_by_focus_are_not_run_not_skipped(tmp_path):
    only = tmp_path / "junit_parallel_01.xml"
    only.write_text(PARALLEL)
    tests = conformance.junit_results([only])
    serial = "[sig-apps] Daemon set [Serial] should rollback without unnecessary restarts "
    assert tests[serial + "[Conformance]"]["result"] == "not run"


def registries_of(repo_list: str) -> dict:
    """The file as manifest.go's yaml.Unmarshal into RegistryList reads it (flat keys)."""
    pairs = (line.split(": ", 1) for line in repo_list.splitlines() if line.strip())
    return {key: value.strip('"') for key, value in pairs}


# manifest.go's RegistryList yaml keys at v1.35.8
MANIFEST_KEYS = {
    "promoterE2eRegistry",
    "buildImageRegistry",
    "invalidRegistry",
    "gcEtcdRegistry",
    "gcRegistry",
    "sigStorageRegistry",
    "privateRegistry",
    "dockerLibraryRegistry",
    "cloudProviderGcpRegistry",
}


def test_the_repo_list_maps_every_pulled_registry_to_the_lab_and_keeps_the_failing_ones():
    registries = registries_of(conformance_images.repo_list())
    assert set(registries) <= MANIFEST_KEYS
    # the tests that use these expect their pull to fail: left at upstream's value
    assert MANIFEST_KEYS - set(registries) == {"invalidRegistry", "privateRegistry"}
    assert all(value.startswith("lab.local") for value in registries.values())


def test_the_suite_names_its_images_as_the_lab_builds_them():
    registries = registries_of(conformance_images.repo_list())
    for image, (key, name, tag) in conformance_images.SUITE_IMAGES.items():
        # manifest.go's Config.GetE2EImage: registry/name:tag
        assert conformance_images.suite_name(image) == f"{registries[key]}/{name}:{tag}"
    assert conformance_images.suite_name("agnhost") == "lab.local/e2e-test-images/agnhost:2.59"
    assert conformance_images.suite_name("pause") == "lab.local/pause:3.10.1"
    assert conformance_images.pause_image().reference == "lab.local/pause:3.10.1"
    assert conformance_images.busybox_image().reference == (
        "lab.local/e2e-test-images/busybox:1.37.0-1"
    )


def no_module_proxy(monkeypatch):
    """What builds.py would ask the Go module proxy, answered here."""
    monkeypatch.setattr(builds, "release_time", lambda module, version: "2026-08-20T15:16:14Z")
    monkeypatch.setattr(builds, "agnhost_version", lambda version: "2.59")
    monkeypatch.setattr(builds, "origin", lambda module, version: {"Hash": "0" * 40})


def test_every_image_the_suite_uses_is_built_under_its_name(monkeypatch):
    no_module_proxy(monkeypatch)
    built = [image.reference for image in conformance_images.conformance_images()]
    assert built == [
        conformance_images.suite_name(name) for name in conformance_images.SUITE_IMAGES
    ]


def test_the_two_agnhost_tags_get_distinct_images(monkeypatch):
    no_module_proxy(monkeypatch)
    current, previous = (conformance_images.agnhost_image(tag) for tag in ("2.59", "2.55"))
    assert current.reference == "lab.local/e2e-test-images/agnhost:2.59"
    assert previous.reference == "lab.local/e2e-test-images/agnhost:2.55"
    assert current.recipe_hash() != previous.recipe_hash()
    assert current.archive != previous.archive


def test_sample_apiserver_and_etcd_are_built_at_the_releases_their_tags_name():
    assert conformance_images.sample_apiserver_image().recipe == [
        builds.sample_apiserver("v0.29.2").recipe()
    ]
    assert conformance_images.etcd_image().recipe == [builds.etcd("v3.6.6").recipe()]


def test_e2e_test_is_a_test_binary_of_the_kubernetes_wrapper(monkeypatch):
    monkeypatch.setattr(builds, "release_time", lambda module, version: "2026-08-20T15:16:14Z")
    e2e, kube = builds.kubernetes_e2e("v1.35.8"), builds.kubernetes("v1.35.8")
    assert e2e.test and e2e.binaries == {"e2e.test": "k8s.io/kubernetes/test/e2e"}
    assert e2e.tags == "selinux,notest,grpcnotrace"
    assert e2e.replace == kube.replace and e2e.ldflags == kube.ldflags
    assert "gitVersion=v1.35.8" in e2e.ldflags
    # a tool line names a main package; test/e2e is none
    assert "tool " not in e2e.go_mod() and "tool k8s.io/kubernetes/cmd/kubelet" in kube.go_mod()
    assert e2e.key == "kubernetes-e2e-v1.35.8" and e2e.recipe() != kube.recipe()


def test_ginkgo_is_built_at_the_version_the_kubernetes_module_requires():
    go_mod = "module k8s.io/kubernetes\n\nrequire (\n\tgithub.com/onsi/ginkgo/v2 v2.27.2\n"
    go_mod += "\tgithub.com/onsi/gomega v1.38.2\n)\n"
    assert builds.module_requirement(go_mod, builds.GINKGO) == "v2.27.2"
    one_line = "require github.com/onsi/ginkgo/v2 v2.1.0\n"
    assert builds.module_requirement(one_line, builds.GINKGO) == "v2.1.0"


def test_the_suite_images_are_built_from_the_release_kubelab_deploys():
    assert mirror.versions().kube_version == conformance_images.KUBE_VERSION


def test_the_summary_gives_the_machines_peak_memory(tmp_path):
    memory = {"kubeminion1": {"charged": 3 * 2**30, "rss": 1536 * 2**20}}
    text = conformance.write_summary(reports(tmp_path), {"parallel": 60.0}, "v1.35.8", memory)
    assert "  kubeminion1: 1536 resident, 3072 charged" in text


def fake_machines(monkeypatch, uses: list[int]):
    monkeypatch.setattr(conformance.cgroups, "lab_cgroup_names", lambda: {"kubeminion1"})
    samples = iter(uses)
    monkeypatch.setattr(
        conformance.cgroups, "memory_use", lambda machine: {"rss": next(samples, 0), "charged": 1}
    )


def test_a_part_runs_to_its_end_and_its_output_goes_to_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(conformance, "OUT", tmp_path)
    fake_machines(monkeypatch, [5, 9, 7])
    monkeypatch.setattr(conformance, "MEMORY_SAMPLE_EVERY", 0.2)
    peaks = {}
    command = ["sh", "-c", 'sleep 0.7; echo "repo list: $KUBE_TEST_REPO_LIST"']
    seconds = conformance.run_part(command, "serial", 30, tmp_path / "repo-list.yaml", peaks)
    assert seconds < 10
    log = (tmp_path / "serial.log").read_text()
    assert log == f"repo list: {tmp_path / 'repo-list.yaml'}\n"
    assert peaks == {"kubeminion1": {"rss": 9, "charged": 1}}


def test_a_part_past_its_deadline_is_stopped(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(conformance, "OUT", tmp_path)
    fake_machines(monkeypatch, [])
    command = ["sh", "-c", "sleep 60 & wait"]  # its child is stopped too: the process group
    seconds = conformance.run_part(command, "parallel", 1, tmp_path / "r.yaml", {})
    assert seconds < 30
    assert "the parallel part passed its deadline of 1 s" in capsys.readouterr().out


def test_the_subset_is_the_network_sig_and_one_test_of_each_other_sig():
    import conformance_subset as subset

    sigs = [name.split("]")[0] + "]" for name in subset.ONE_PER_SIG]
    assert len(set(sigs)) == len(sigs) == 9 and subset.NETWORK not in sigs
    focus = re.compile(subset.focus())  # Go's regexp reads these escapes as Python's re does
    assert focus.search("[sig-network] DNS should provide DNS for services  [Conformance]")
    chosen = "[sig-node] ConfigMap should be consumable via the environment [NodeConformance]"
    assert focus.search(chosen + "  [Conformance]")
    assert not focus.search("[sig-node] Pods should get a host IP [NodeConformance] [Conformance]")


def test_the_subset_fails_on_a_failed_or_missing_test(tmp_path):
    import conformance_subset as subset

    tests = conformance.junit_results(sorted(reports(tmp_path).glob("junit_*.xml")))
    passed, failed, problems = subset.outcome(tests)
    # the samples: one network test passed, one failed; the architecture SIG's chosen test was
    # skipped; the 8 others are not there (the node SIG's passed test is not the chosen one)
    assert passed == 1
    assert any(p.startswith("[sig-network] Services should serve endpoints") for p in problems)
    assert any(p.startswith("[sig-architecture] Conformance Tests") for p in problems)
    missing = [p for p in problems if p.endswith("not in the reports")]
    assert len(missing) == 8 and failed == len(problems) == 10
    only_passed = {n: t for n, t in tests.items() if t["result"] == "passed"}
    assert subset.outcome(only_passed)[1] == 9  # the skipped one and the 8 are missing
