"""`python -m finpulse` = the `finpulse` command (used to start a detached supervisor)."""

from finpulse.cli import main

main()
