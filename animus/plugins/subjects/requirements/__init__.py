"""The ``requirements`` subject backend: requirements kept in the scoped ``workflow.db``."""
