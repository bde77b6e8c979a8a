"""Notebook pipelines: a YAML spec chaining parameterized notebooks into a cached DAG.

spec.py      load and validate the YAML (line numbers in every error)
references.py  `${...}` substitution from declared values, never evaluated
cache.py     step cache keys
execution.py   one notebook through papermill, with the step's environment
ingest.py    replay what a step glued into the store
runner.py    the DAG: order, parallelism, cache, failure, reports
executors.py   local threads or a Dask cluster
warm.py      warm steps: kernels forked from a template process (kernel_template.py)
kernel_client.py  the steps' kernel client, ready without fixed waits
schedule.py  cron schedules
"""
