"""Device-side commands: the modules that add them (each has `register(groups)`)."""

COMMANDS = (
    "edge.commands.models",  # models list
    "edge.commands.bundle",  # models install
    "edge.commands.pose",  # pose IMAGE
    "edge.commands.runtime",  # edge run | check
    "edge.commands.engine",  # engine build
    "edge.commands.outbox",  # edge outbox-salvage
)
