"""The ``default`` subject backend: tasks kept in the scoped ``workflow.db``."""
