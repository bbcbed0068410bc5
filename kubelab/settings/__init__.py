"""The settings: defaults, kinds, profiles, the topology, their validation."""
