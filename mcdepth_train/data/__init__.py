"""Data: the sample dict (keys.py), synthetic scenes, KITTI, Cityscapes, image folders, rosbags, transforms.

``build_dataset(cfg, split)`` (factory.py) is the entry point; docs/data.md describes every loader.
"""
from .factory import build_dataset

__all__ = ["build_dataset"]
