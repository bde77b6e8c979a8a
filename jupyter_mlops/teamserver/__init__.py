"""The team server, `mlops server`: one Tornado process that owns the team's store.

home.py     the server's home: server.toml, audit.key, init and opening the store
routes.py   the route table: every route's method, path, permission and schema
app.py      the Tornado handlers: the door (Host, version, token, permission)
records.py  POST /api/v1/records: a batch of glued records applied exactly once
openapi.py  the OpenAPI 3.1 document, generated from the route table

docs/team-mode.md is the design and the wire contract.
"""
