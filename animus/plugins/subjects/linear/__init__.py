"""The ``linear`` subject backend: Linear issues through Linear's GraphQL API."""
