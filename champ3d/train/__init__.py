"""Training Champ's networks (stage 1: image pairs; stage 2: motion modules) on champ3d clip folders."""
from champ3d.train.clips import TrainingClip, find_clips, write_training_clip
from champ3d.train.config import TrainConfig, load_train_config
from champ3d.train.trainer import ChampTrainer

__all__ = ["ChampTrainer", "TrainConfig", "TrainingClip", "find_clips", "load_train_config", "write_training_clip"]
