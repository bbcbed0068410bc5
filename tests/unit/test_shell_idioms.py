"""The shell idioms kubelab's commands share (kubelab.engine.shell) and the client command lines
(kubelab.engine.clients), run by sh here."""

import shlex
import subprocess

from kubelab.engine import clients, shell


def sh(command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True)


def test_a_failure_is_one_line_with_the_last_words_of_the_program():
    command = "out=$(printf 'noise\\nError: it broke\\n'; false) || " + shell.or_fail(
        "kubelab: m: doing it: ", shell.last_line("out"), shlex.quote(" (bounded)")
    )
    result = sh(f"{command}; echo not reached")
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "kubelab: m: doing it: Error: it broke (bounded)\n"


def test_a_failure_cleans_up_first_and_quotes_its_message():
    failed = shell.or_fail("it's $HOME `x`", first="echo cleaned; ")
    result = sh(f"false || {failed}")
    assert (result.returncode, result.stdout, result.stderr) == (1, "cleaned\n", "it's $HOME `x`\n")


def test_attempts_end_at_the_first_success_or_after_the_last_try(tmp_path):
    counter = tmp_path / "tries"
    counter.write_text("")
    # fails twice, then succeeds
    command = (
        f"{{ echo x >> {counter}; [ $(wc -l < {counter}) -ge 3 ] || {{ echo no >&2; false; }}; }}"
    )
    assert sh(shell.attempts(command, 5, 0, "kubelab: m: ")).returncode == 0
    assert len(counter.read_text().splitlines()) == 3
    counter.write_text("")
    result = sh(shell.attempts(command, 2, 0, "kubelab: m: gave up: "))
    assert (result.returncode, result.stderr) == (1, "kubelab: m: gave up: no\n")
    assert len(counter.read_text().splitlines()) == 2


def test_until_deadline_gives_up_with_the_last_line_printed():
    result = sh(shell.until_deadline("echo 'not yet'; false", 0, 0, "kubelab: m: waiting: "))
    assert (result.returncode, result.stderr) == (1, "kubelab: m: waiting: not yet\n")
    assert sh(shell.until_deadline("true", 0, 0, "unused")).returncode == 0


def test_every_etcdctl_line_starts_the_same_way():
    line = clients.etcdctl_line(3, "https://m:2379", "--dial-timeout=5s --cert=/c")
    assert line == "ETCDCTL_API=3 etcdctl --endpoints=https://m:2379 --dial-timeout=5s --cert=/c"
    assert (
        clients.etcdctl_line(2, "http://m:2379")
        == "ETCDCTL_API=2 etcdctl --endpoints=http://m:2379"
    )
