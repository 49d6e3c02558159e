"""One module per ``mcdepth-train`` subcommand (see ``mcdepth_train.cli.COMMANDS``)."""
