"""Governance: model versions and aliases, validation gates, four-eyes release
approvals and the audit log. The rules live here; the CLI and the dashboard
only call them."""
