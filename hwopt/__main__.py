"""`python -m hwopt` runs the CLI."""

from hwopt.cli import main

raise SystemExit(main())
