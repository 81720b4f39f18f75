"""Small shared builders for the tests."""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


def digits_split():
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(x, data.target, test_size=0.2, stratify=data.target, random_state=0)
