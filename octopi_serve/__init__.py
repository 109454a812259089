"""octopi_serve: the launcher layer of octopi-serve, above the gateway (``app``) and the workers (``worker``).

The ``octopi-serve`` console script (:mod:`.cli`), the process supervisor behind ``serve``
(:mod:`.stack`), a private redis-server launcher (:mod:`.redis_server`) and the HTTP client behind
``submit`` (:mod:`.client`). Nothing below this package imports it.
"""

__all__: list[str] = []
