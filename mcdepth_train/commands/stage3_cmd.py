"""``mcdepth-train stage3 --run RUN``: run the stage3 stage of a run (resumable; skipped when up to date)."""
from .common import stage_command

add_arguments, run = stage_command("stage3")
