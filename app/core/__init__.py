"""Gateway building blocks: errors, problem details, security, rate limits, metrics, request limits."""
