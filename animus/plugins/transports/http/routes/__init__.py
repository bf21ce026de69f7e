"""transport-http's routes, one module per area, each a ``routes(ctx) -> [Route]``.

``daemon`` (status, health, metrics, logs, plugins), ``workflows`` (list, run,
get, the operator's decisions, triggers), ``diff`` (a run's changes),
``subjects`` (the task board through the subject backends), ``events``
(server-sent events), ``web`` (webhooks, the UI's files, the contract).
"""
