"""The ``sqlite`` subject backend: subjects in an SQLite file the operator chose."""
