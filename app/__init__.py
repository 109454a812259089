"""FastAPI gateway: accepts picking jobs, reports on them, serves their picks."""
