"""tierflow HTTP API (FastAPI) and command line."""
