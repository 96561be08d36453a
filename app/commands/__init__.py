"""The ``postline`` subcommands, one module each.

Each module in ``COMMANDS`` has ``register(commands)``, which adds its
subparser(s) to the ``postline`` parser and sets ``func`` on them: a function
``(args) -> exit code``. Modules are imported only to build the parser; what
a command needs beyond argparse (a service, a database driver) it imports when
it runs.
"""

COMMANDS = ("services", "topology", "config", "user", "trace", "dkim", "queue", "doctor")
