"""The HTTP layer: routes, handlers and responses; it translates HTTP to registry library calls."""
