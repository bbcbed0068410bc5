"""The workflows, their steps' order: cluster, smoke test, removal, reset, upgrade."""
