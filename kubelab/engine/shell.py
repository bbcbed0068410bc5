"""Shell idioms kubelab's remote commands share.

A command that fails prints one line on stderr, ``kubelab: <host>: <what>: <why>``, and exits
1; the why is often the last line a program printed, kept in a shell variable. A command that
waits on something tries it again, a bounded number of times or until a deadline, and then
fails the same way.
"""

import shlex


def last_line(variable: str) -> str:
    """Shell: the last line of ``$variable``, as one double-quoted word."""
    return f'"$(printf %s "${variable}" | tail -n 1)"'


def fail(message: str, *words: str) -> str:
    """Shell: ``message`` (text, quoted here) followed by ``words`` (shell words, such as
    ``last_line``'s), printed as one line on stderr; then exit 1."""
    return f"echo {shlex.quote(message)}{''.join(words)} >&2; exit 1"


def or_fail(message: str, *words: str, first: str = "") -> str:
    """Shell: the block after ``||``: ``first`` (commands, each ended by ``;``, such as a
    cleanup), then ``fail``."""
    return f"{{ {first}{fail(message, *words)}; }}"


def attempts(command: str, count: int, pause: int, message: str) -> str:
    """Shell: ``command`` tried up to ``count`` times, ``pause`` seconds apart, until it
    succeeds; then ``message`` and its last error line. The whole command ends there."""
    return (
        f"for attempt in $(seq {count}); do err=$({command} 2>&1 >/dev/null) && exit 0; "
        f"sleep {pause}; done; {fail(message, last_line('err'))}"
    )


def until_deadline(command: str, seconds: int, pause: int, message: str) -> str:
    """Shell: ``command`` tried every ``pause`` seconds until it succeeds, at most ``seconds``
    seconds; then ``message`` and the last line it printed."""
    return (
        f"end=$(( $(date +%s) + {seconds} )); until out=$({command} 2>&1); do "
        f'if [ "$(date +%s)" -ge "$end" ]; then {fail(message, last_line("out"))}; fi; '
        f"sleep {pause}; done"
    )
