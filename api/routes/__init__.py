"""Routers of the v1 API: thin, over keyword-only engine methods."""
