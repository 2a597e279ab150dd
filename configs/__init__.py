"""Typed configuration of every role, and the named presets (setups) of an experiment."""
