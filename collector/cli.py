"""Commands of the collector part: the modules that add them (each has `register(groups)`)."""

COMMANDS = ("collector.cli_commands",)  # collector run | user add|disable|delete
