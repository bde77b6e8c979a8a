"""The client side of team mode: a project recording into `mlops server` over HTTP.

`client` (HTTP, errors on the wire), `credentials` (the tokens `mlops login`
keeps), `queue` (records sent in batches by a thread), `spool` (what the server
has not taken yet, on disk), `recorder` (`RemoteRecorder`, the third recorder),
`session` (login, status, sync). See docs/team-mode.md.
"""
