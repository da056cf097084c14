"""Jittered copies of labelled digits (softmax_core.augment), checked against scipy's
affine resampling and for what oversampling needs of them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import affine_transform

from softmax_core import augment


def digits(n: int = 6) -> np.ndarray:
    rng = np.random.default_rng(1)
    x = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):  # a bar and a blob, somewhere near the middle
        r, c = rng.integers(8, 16, 2)
        x[i, r : r + 10, c : c + 3] = 255
        x[i, r + 4 : r + 7, c - 3 : c + 6] = 180
    return x


def test_the_first_copy_is_the_image_and_the_others_are_moved() -> None:
    x = digits()
    out = augment.jitter(x, 4, np.random.default_rng(0))
    assert out.shape == (24, 28, 28) and out.dtype == np.uint8
    assert np.array_equal(out[::4], x)
    moved = [i for i in range(24) if i % 4]
    assert all(not np.array_equal(out[i], x[i // 4]) for i in moved)
    # small moves: the ink stays about where it was and about as much
    for i in moved:
        a, b = out[i].astype(float), x[i // 4].astype(float)
        assert 0.7 < a.sum() / b.sum() < 1.4
        assert np.abs(_centre(a) - _centre(b)).max() < 3.5


def _centre(image: np.ndarray) -> np.ndarray:
    """(2,) the mean (row, column) of the nonzero pixels."""
    centre: np.ndarray = np.array(np.nonzero(image)).mean(axis=1)
    return centre


def test_repeats_one_is_the_images_and_the_generator_decides() -> None:
    x = digits()
    assert np.array_equal(augment.jitter(x, 1, np.random.default_rng(0)), x)
    one = augment.jitter(x, 3, np.random.default_rng(7))
    assert np.array_equal(one, augment.jitter(x, 3, np.random.default_rng(7)))
    assert not np.array_equal(one, augment.jitter(x, 3, np.random.default_rng(8)))
    with pytest.raises(ValueError, match="repeats=0"):
        augment.jitter(x, 0, np.random.default_rng(0))


def test_the_warp_is_scipys_bilinear_affine_transform() -> None:
    """Each moved copy is the input resampled at A @ (row, col) + offset, bilinearly, with
    zeros outside: what scipy.ndimage.affine_transform(order=1) computes, given the same
    matrix (recovered here from the same random draws)."""
    x = digits(5)
    rng = np.random.default_rng(3)
    k: int = x.shape[0]
    out = augment._warp(x, np.random.default_rng(3))
    angle = np.radians(rng.uniform(-augment.ROTATION, augment.ROTATION, k))
    shear = rng.uniform(-augment.SHEAR, augment.SHEAR, k)
    scale = 1.0 + rng.uniform(-augment.SCALE, augment.SCALE, k)
    shift = rng.uniform(-augment.SHIFT, augment.SHIFT, (k, 2))
    centre = np.array([13.5, 13.5])
    for i in range(k):
        rot = np.array(
            [[np.cos(angle[i]), -np.sin(angle[i])], [np.sin(angle[i]), np.cos(angle[i])]]
        )
        a = rot @ np.array([[1.0, shear[i]], [0.0, 1.0]]) / scale[i]
        offset = centre - a @ centre + shift[i]
        expected = affine_transform(x[i].astype(np.float64), a, offset=offset, order=1, cval=0.0)
        assert np.abs(out[i].astype(float) - np.clip(np.rint(expected), 0, 255)).max() <= 1
