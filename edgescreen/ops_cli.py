"""Operations commands: the modules that add them (each has `register(groups)`)."""

COMMANDS = (
    "edgescreen.commands.demo",  # demo
    "edgescreen.commands.provision",  # provision ca | device | revoke
    "edgescreen.commands.maintenance",  # maintenance
    "edgescreen.commands.codes",  # codes resolve
)
