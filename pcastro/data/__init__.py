from ._datasets import Dataset as Dataset, load_dataset as load_dataset
from ._download import download as download
from ._episodes import (
    Episode as Episode,
    base_novel_split as base_novel_split,
    sample_episode as sample_episode,
    sample_episodes as sample_episodes,
)
from ._idx import load_idx_pair as load_idx_pair, read_idx as read_idx, write_idx as write_idx

__all__ = [
    "base_novel_split",
    "Dataset",
    "download",
    "Episode",
    "load_dataset",
    "load_idx_pair",
    "read_idx",
    "sample_episode",
    "sample_episodes",
    "write_idx",
]
