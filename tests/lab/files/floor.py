"""pyinfra's floor for make bench: connect, read one fact per host, change nothing."""

from pyinfra import host
from pyinfra.facts.server import Hostname

host.get_fact(Hostname)
