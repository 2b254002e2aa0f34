"""``python -m covergan`` runs the command line."""

from covergan.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
