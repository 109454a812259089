"""RQ workers: each process keeps its models loaded and turns queued jobs into picks."""
