"""The sha256 digests a host keeps of kubelab's files, so that a re-run reads a file again only
when it changed (``ManagedState`` reads through it; ``downloads`` adds what it installs)."""

import shlex

# The sha256 of each file ManagedState digested, with the file's fingerprint then: device, inode,
# size, mtime and ctime (a write, chmod or replacement changes the ctime, which only the clock
# sets). A file whose fingerprint still matches is not read again: most of a no-change re-run's
# time was sha256sum reading the binaries (0.9-1.5 s of CPU per host). A file changed within
# RACY_SECONDS of the read is not kept: its ctime may not tell a second change in the same tick.
DIGEST_CACHE = "/var/lib/kubelab/sha256sums"
RACY_SECONDS = 2
FINGERPRINT = "%D:%i:%s:%T@:%C@"  # find -printf: device, inode, size, mtime, ctime
DIGESTS_AWK = r"""
BEGIN {
  while ((getline line < cache) > 0) {
    i = index(line, " "); entry = substr(line, i + 1)
    known[entry] = substr(line, 1, i - 1)
    others[substr(entry, index(entry, " ") + 1)] = line
  }
  close(cache)
}
NF {
  path = substr($0, index($0, " ") + 1); delete others[path]
  if ($0 in known) sha = known[$0]
  else {
    quoted = path; gsub(/'/, "'\''", quoted); sha = ""
    command = "sha256sum '" quoted "'"
    if ((command | getline out) > 0) sha = substr(out, 1, 64)
    close(command)
    if (sha == "") next
    dirty = 1
  }
  print "D " sha "  " path
  split($1, fingerprint, ":")
  if (fingerprint[5] + 0 < now - racy) keep[path] = sha " " $0
}
END {
  if (!dirty || !writable) exit
  for (path in others) print others[path] > (cache ".new")
  for (path in keep) print keep[path] > (cache ".new")
  close(cache ".new")
  system("mv -f '" cache ".new' '" cache "'")
}
"""


def cache_writable(cache: str) -> str:
    """Shell test: the folder of the digest cache ``cache`` is there and writable."""
    folder = shlex.quote(cache.rsplit("/", 1)[0])
    return f"[ -d {folder} ] && [ -w {folder} ]"


def digests_script(quoted_paths: str, cache: str) -> str:
    """Shell: ``D <sha256>  <path>`` for each file of ``quoted_paths`` (see DIGEST_CACHE)."""
    return (
        f"(umask 077; w=0; {cache_writable(cache)} && w=1; "
        f"find -H {quoted_paths} -maxdepth 0 -type f -printf '{FINGERPRINT} %p\\n' "
        f'2>/dev/null | awk -v cache={shlex.quote(cache)} -v now="$(date +%s)" '
        f"-v racy={RACY_SECONDS} -v writable=$w {shlex.quote(DIGESTS_AWK)})"
    )


def kept_digest_command(path: str, sha256: str, cache: str = DIGEST_CACHE) -> str:
    """Shell: ``sha256`` kept in DIGEST_CACHE for ``path`` with its fingerprint, right after
    the file was checked against that digest and renamed into place (a new inode no one else
    has open): the next read takes it as if it had digested the file itself, so the first
    re-run after an install does not read every binary again. No folder: nothing is kept."""
    line = f"{sha256} {FINGERPRINT} %p\\n"
    return (
        f"if {cache_writable(cache)}; then (umask 077; find -H {shlex.quote(path)} "
        f"-maxdepth 0 -type f -printf '{line}' >> {shlex.quote(cache)}); fi"
    )


def kept_digests_command(listing: str, cache: str = DIGEST_CACHE) -> str:
    """Shell: as ``kept_digest_command``, the digest of each file a ``sha256sum`` listing at
    ``listing`` names (lines whose path is absolute), checked and renamed into place just
    before."""
    line = f"$sum {FINGERPRINT} %p\\n"
    return (
        f"if {cache_writable(cache)}; then (umask 077; while read -r sum path; do "
        f'case "$path" in /*) find -H "$path" -maxdepth 0 -type f -printf "{line}";; esac; '
        f"done < {shlex.quote(listing)} >> {shlex.quote(cache)}); fi"
    )
