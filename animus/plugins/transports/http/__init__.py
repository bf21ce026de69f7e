"""``transport-http``: the daemon over REST, server-sent events and Prometheus text.

See ``app`` for the routes and ``openapi.yaml`` for their contract.
"""
