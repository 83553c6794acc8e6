"""`python -m foxden.http`: the HTTP process (started by the daemon, never by hand)."""
import sys

from foxden.http.server import main

sys.exit(main())
