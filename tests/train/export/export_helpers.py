"""Helpers shared by the export tests: seeded random checkpoints and the real KITTI frames."""
from __future__ import annotations

from pathlib import Path

import torch

from mcdepth_train.config import Config, config_to_dict
from mcdepth_train.engine.checkpoint import save_checkpoint
from mcdepth_train.networks.depth import DepthNet

HEIGHT, WIDTH = 64, 192
KITTI_FRAMES = Path("kitti_sfnd_2011_09_26/images/KITTI/2011_09_26/image_02/data")


def make_checkpoint(path: Path, encoder: str = "resnet18", seed: int = 0, models: dict | None = None,
                    config_encoder: str | None = None) -> Path:
    """A checkpoint of a seeded random DepthNet whose saved config exports at HEIGHT x WIDTH.

    ``config_encoder`` writes another encoder name into the config than the weights have (a
    checkpoint of another architecture).
    """
    torch.manual_seed(seed)
    cfg = Config()
    cfg.model.encoder = encoder
    cfg.export.height, cfg.export.width = HEIGHT, WIDTH
    net = DepthNet.from_config(cfg)
    if config_encoder:
        cfg.model.encoder = config_encoder
    return save_checkpoint(path, stage="stage3", step=10, epoch=1, config=config_to_dict(cfg),
                           models={"depth": net} if models is None else models)
