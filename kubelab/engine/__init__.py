"""The re-run engine: what runs once, each host's state, files in place, facts."""
