"""`python -m finpulse` = the `finpulse` command: how the supervisor starts every part and a detached `up`."""

from finpulse.cli import main

main()
