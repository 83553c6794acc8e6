"""`python -m foxden.chaos`: the same as `foxden chaos`."""
import sys

from foxden.chaos.cli import main

__all__: list[str] = []

sys.exit(main())
