"""The HTTP scoring service: `mlops serve NAME@ALIAS`."""
