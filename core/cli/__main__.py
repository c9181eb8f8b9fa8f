"""`python -m dockyard.core.cli` runs the CLI."""

from dockyard.core.cli.main import main

main()
