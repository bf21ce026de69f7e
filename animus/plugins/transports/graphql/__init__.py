"""``transport-graphql``: the daemon's data as a GraphQL schema, with live events as subscriptions.

``schema.graphql`` is the contract; ``resolvers`` maps it onto control
methods and the bus. Queries and mutations are served over HTTP POST at
``/graphql``; subscriptions over WebSocket at the same path with the
``graphql-transport-ws`` protocol.
"""
