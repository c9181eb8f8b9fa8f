"""Dockyard's command line: a lazy click group whose commands are imported only when they run."""
