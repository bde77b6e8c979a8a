"""The Panel web app: release approvals, models, runs and the audit log.

Each page is a function given to `pn.serve` (fresh state per browser session);
the rules live in `jupyter_mlops.registry`, the pages only call them. The
trust boundary is Panel-free: `credentials` (private password file),
`authenticator` with `sessions` and `throttle` (sign-in, back-off, server-side
sessions), `hostguard` (the Host allowlist), `downloads` (sandboxed artifacts);
`auth` and `app` are the thin tornado/Bokeh adapters over them.
"""
