"""The command line: `medyate <subcommand>` (one module per subcommand, each
with `register(subparsers)`, see cli.py) and `medyate-flash` (flash.py).
These modules parse arguments, call the library and print; what they decide
lives in algo/ (the plan), session/ (firmware, data placement, training) and
planner/ (memory)."""
