"""`python -m skyscreen_hw` is the same as the `skyscreen-hw` command."""

from skyscreen_hw.cli import main

raise SystemExit(main())
