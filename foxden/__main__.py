"""`python -m foxden` is the `foxden` command (importing this module does nothing)."""

if __name__ == "__main__":
    import sys

    from foxden.cli import main

    sys.exit(main())
