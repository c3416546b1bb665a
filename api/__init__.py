"""The REST API: every registry model, scoped to the user's sites, written through the services."""
