"""Data: the sample dict (keys.py), synthetic scenes, KITTI, Cityscapes, image folders, rosbags, transforms."""
