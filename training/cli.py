"""Training-side commands: the modules that add them (each has `register(groups)`)."""

COMMANDS = (
    "training.commands.synth",  # synth ...
    "training.commands.train",  # train ...
    "training.commands.avatar_data",  # models avatar-data
)
