"""``python -m rapidseval``: the command line (:mod:`rapidseval.cli`)."""

from rapidseval.cli import main

if __name__ == "__main__":
    main()
