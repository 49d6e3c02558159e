"""``mcdepth-train masks --run RUN``: run the masks stage of a run (resumable; skipped when up to date)."""
from .common import stage_command

add_arguments, run = stage_command("masks")
