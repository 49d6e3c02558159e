"""``mcdepth-train dsa --run RUN``: run the dsa stage of a run (resumable; skipped when up to date)."""
from .common import stage_command

add_arguments, run = stage_command("dsa")
