"""`python -m dockyard.core.cli` runs the CLI."""

from dockyard.core.cli.launcher import main

main()
