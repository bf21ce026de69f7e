"""Workflow runners elsewhere: on a Ray cluster (backend, cluster, config, task) and the store and run bookkeeping they reach the daemon through."""
