"""The operator HTTP API: FastAPI routers under `/api/`, on the same ASGI app (and port) as
Slack's HTTP mode. Like every adapter it only translates: HTTP in, the engine's tasks and
queries out, and the engine's records back as JSON."""
