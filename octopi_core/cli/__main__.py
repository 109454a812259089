"""``python -m octopi_core.cli``: run one domain command."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
