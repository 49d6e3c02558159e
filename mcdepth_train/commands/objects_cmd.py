"""``mcdepth-train objects --run RUN``: run the objects stage of a run (resumable; skipped when up to date)."""
from .common import stage_command

add_arguments, run = stage_command("objects")
