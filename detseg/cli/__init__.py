"""The command line: ``detseg <command>`` (detseg.cli.main) and the modules behind each command; the
scripts in tools/ call the same modules, so ``python tools/train.py`` and ``detseg train`` are one thing."""
