"""Pure ASGI middleware (no BaseHTTPMiddleware): each holds one concern."""
