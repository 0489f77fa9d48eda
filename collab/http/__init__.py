"""The thin edge: REST and WebSocket endpoints (parse, authorise, delegate)."""
