"""The Panel web app: release approvals, models, runs and the audit log.

Each page is a function given to `pn.serve` (fresh state per browser session);
the rules live in `jupyter_mlops.registry`, the pages only call them.
"""
