"""Datasets and transforms for the tasks (ImageNet folders, ...)."""
