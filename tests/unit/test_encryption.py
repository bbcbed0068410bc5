"""Secrets encrypted at rest on simulated hosts: the key made once in the local PKI, the
apiserver's EncryptionConfiguration, the Secrets rewritten whenever it changes, and a key
rotation step by step."""

import copy
import hashlib
import os
import re
import stat
from pathlib import Path

import pytest
from conftest import HOSTS, MASTER
from fakehosts import debian12, run_deploy
from test_modern import pins

import kubelab
from kubelab import SettingError
from kubelab.pki.encryption import new_key_line

CONFIG = "/etc/kubernetes/encryption-config.yaml"
UNIT = "/etc/systemd/system/kube-apiserver.service"


def build(tmp_path, **data):
    machines = {name: debian12() for name in HOSTS}
    settings = {"artifact_sha256": pins(), "pki_dir": str(tmp_path / "pki"), **data}
    run_deploy(machines, kubelab.deploy_cluster, data=settings)
    return machines, settings


def keys_file(settings) -> Path:
    return Path(settings["pki_dir"]) / "secrets-encryption.keys"


def providers(machines) -> list[str]:
    """The providers of the master's configuration, in order, aescbc with its key names."""
    text = machines[MASTER].text(CONFIG)
    found = []
    for line in text.splitlines():
        if line.strip().startswith("- aescbc:"):
            found.append("aescbc")
        elif line.strip().startswith("- identity:"):
            found.append("identity")
        elif line.strip().startswith("- name: "):
            found[-1] += " " + line.split(": ", 1)[1]
    return found


def rerun(machines, settings):
    for machine in machines.values():
        machine.restarts.clear()
    return run_deploy(machines, kubelab.deploy_cluster, data=settings)


def sha(machines) -> str:
    return hashlib.sha256(machines[MASTER].files[CONFIG].content).hexdigest()


def test_secrets_are_encrypted_by_default_with_a_key_made_once(tmp_path):
    machines, settings = build(tmp_path)
    master = machines[MASTER]
    path = keys_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert re.fullmatch(r"key1:[A-Za-z0-9+/]{43}=\n", path.read_text())
    assert providers(machines) == ["aescbc key1", "identity"]
    assert path.read_text().split(":", 1)[1].strip() in master.text(CONFIG)
    assert master.files[CONFIG].mode == 0o600
    assert "--encryption-provider-config=/etc/kubernetes/encryption-config.yaml" in master.text(
        UNIT
    )
    # the Secrets were rewritten after the apiserver (re)started with it
    assert master.rewritten == [sha(machines)]
    before = path.read_bytes()
    run = rerun(machines, settings)
    assert run.commands == {name: [] for name in HOSTS}
    assert path.read_bytes() == before
    assert master.rewritten == [sha(machines)]


def test_turned_on_for_a_running_cluster_the_stored_secrets_are_rewritten(tmp_path, order):
    machines, settings = build(tmp_path, secrets_encryption=False)
    master = machines[MASTER]
    assert CONFIG not in master.files and not keys_file(settings).exists()
    assert "encryption-provider-config" not in master.text(UNIT)
    assert master.rewritten == []
    order.clear()
    rerun(machines, {**settings, "secrets_encryption": True})
    assert providers(machines) == ["aescbc key1", "identity"]
    assert "kube-apiserver.service" in master.restarts
    assert master.rewritten == [sha(machines)]
    commands = [command for host, command in order if host == MASTER]
    restart = commands.index("systemctl restart kube-apiserver.service")
    rewrite = next(i for i, c in enumerate(commands) if "get secrets -A -o json" in c)
    assert restart < rewrite


def test_turned_off_secrets_are_written_in_plaintext_and_the_key_still_reads(tmp_path):
    machines, settings = build(tmp_path)
    rerun(machines, {**settings, "secrets_encryption": False})
    assert providers(machines) == ["identity", "aescbc key1"]
    assert "kube-apiserver.service" in machines[MASTER].restarts
    assert machines[MASTER].rewritten[-1] == sha(machines)


def test_key_rotation(tmp_path):
    """docs/security.md's steps: the new key added second, then moved first, then the old one
    dropped; each run restarts the apiserver and rewrites the Secrets."""
    machines, settings = build(tmp_path)
    path = keys_file(settings)
    old = path.read_text()
    steps = [
        (old + new_key_line("key2"), ["aescbc key1 key2", "identity"]),
    ]
    new = steps[0][0].splitlines(keepends=True)[1]
    steps += [
        (new + old, ["aescbc key2 key1", "identity"]),
        (new, ["aescbc key2", "identity"]),
    ]
    for text, wanted in steps:
        path.write_text(text)
        rerun(machines, settings)
        assert providers(machines) == wanted
        assert machines[MASTER].restarts == ["kube-apiserver.service"]
        assert machines[MASTER].rewritten[-1] == sha(machines)
    assert len(machines[MASTER].rewritten) == 4


def test_a_rewrite_that_failed_is_done_by_the_next_run(tmp_path):
    machines, settings = build(tmp_path, secrets_encryption=False)
    machines[MASTER].kube_error = "The connection to the server was refused"
    on = {**settings, "secrets_encryption": True}
    run = run_deploy(machines, kubelab.deploy_cluster, data=on, expect_failures=True)
    assert run.failed == [MASTER] and machines[MASTER].rewritten == []
    machines[MASTER].kube_error = None
    rerun(machines, on)
    assert machines[MASTER].rewritten == [sha(machines)]


def test_a_lost_key_file_stops_the_run_before_any_host_is_touched(tmp_path):
    machines, settings = build(tmp_path)
    keys_file(settings).unlink()
    before = copy.deepcopy(machines)
    with pytest.raises(SettingError) as raised:
        run_deploy(machines, kubelab.deploy_cluster, data=settings)
    message = str(raised.value)
    assert "\n" not in message
    assert re.match(
        rf"kubelab: setting 'pki_dir' on {re.escape(MASTER)}: .*secrets-encryption\.keys does "
        "not exist, but this master encrypts Secrets",
        message,
    )
    assert machines == before
    assert not keys_file(settings).exists()  # no new key behind the user's back


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("key1 secret\n", "line 1 is not 'name:base64 key'"),
        ("key1:c2hvcnQ=\n", "line 1 holds a key that is not 32 bytes"),
        ("key1:!!!!\n", "line 1 holds a key that is not base64"),
        ("# only a comment\n", "holds no key"),
    ],
)
def test_a_bad_key_file_stops_the_run_with_one_line_without_the_key(tmp_path, text, phrase):
    pki = tmp_path / "pki"
    pki.mkdir(mode=0o700)
    (pki / "secrets-encryption.keys").write_text(text)
    os.chmod(pki / "secrets-encryption.keys", 0o600)
    machines = {name: debian12() for name in HOSTS}
    with pytest.raises(SettingError, match=re.escape(phrase)) as raised:
        run_deploy(
            machines, kubelab.deploy_cluster, data={"artifact_sha256": pins(), "pki_dir": str(pki)}
        )
    assert "c2hvcnQ" not in str(raised.value)
    dup = new_key_line("key1")
    (pki / "secrets-encryption.keys").write_text(dup + dup)
    with pytest.raises(SettingError, match="line 2 repeats the key name 'key1'"):
        run_deploy(
            machines, kubelab.deploy_cluster, data={"artifact_sha256": pins(), "pki_dir": str(pki)}
        )


FAKE_KUBECTL = """#!/bin/sh
case "$1" in
get) cat "$(dirname "$0")/list.json" ;;
replace) cat > "$(dirname "$0")/replaced" ;;
esac
"""


@pytest.mark.parametrize("items, replaced", [("[]", False), ('[{"kind": "Secret"}]', True)])
def test_shell_the_rewrite_replaces_the_secrets_and_accepts_none(tmp_path, items, replaced):
    """kubectl replace refuses an empty list: a new cluster holding no Secret yet passes."""
    import subprocess

    from kubelab.pki.encryption import rewrite_command

    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(0o755)
    (tmp_path / "list.json").write_text(f'{{\n    "items": {items},\n    "kind": "List"\n}}\n')
    command = rewrite_command(str(kubectl), lambda c, _: c, "0" * 64).split(" && printf")[0]
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "replaced").exists() == replaced
