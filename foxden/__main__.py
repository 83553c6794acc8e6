"""`python -m foxden` is the `foxden` command."""
import sys

from foxden.cli import main

sys.exit(main())
