"""One module per ``champ3d`` subcommand.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
:mod:`champ3d.cli` lists them in ``COMMANDS``; shared option groups live in
:mod:`champ3d.commands.options`.
"""
