"""sortedhash.plotting draws what it is given (checked on the Agg canvas's artists)."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from sortedhash.metrics import precision_recall_curve  # noqa: E402
from sortedhash.plotting import (plot_hamming_histogram, plot_map_vs_bits, plot_precision_recall,  # noqa: E402
                                 plot_retrieval_grid, plot_soft_permutation)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _codes(n, n_bytes=2, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, n_bytes), dtype=np.uint8)


def test_precision_recall_draws_each_curve_without_its_nan_points():
    db, labels = _codes(60), np.arange(60) % 3
    precision, recall, _ = precision_recall_curve(db[:10], labels[:10], db, labels)
    precision = precision.copy()
    precision[:2] = np.nan  # radii at which no query retrieved anything
    # The curve's three values (precision, recall, radius) go in as they come.
    ax = plot_precision_recall({"a": (precision, recall, np.arange(17)), "b": (precision * 0.5, recall)})
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].get_xdata(), recall[2:])
    np.testing.assert_allclose(lines[1].get_ydata(), 0.5 * precision[2:])


def test_map_vs_bits_plain_values_and_error_bars():
    ax = plot_map_vs_bits({"ITQ": {32: 0.5, 16: 0.4}, "NSH": {16: (0.6, 0.01), 32: (0.7, 0.02)}}, ylabel="mAP@100")
    (itq,) = (line for line in ax.get_lines() if line.get_label() == "ITQ")
    np.testing.assert_array_equal(itq.get_xdata(), [16, 32])  # sorted by length
    np.testing.assert_allclose(itq.get_ydata(), [0.4, 0.5])
    (errorbar,) = ax.containers  # one error-bar container, for the (mean, std) method
    assert errorbar.get_label() == "NSH"
    np.testing.assert_allclose(errorbar.lines[0].get_ydata(), [0.6, 0.7])
    assert ax.get_ylabel() == "mAP@100" and ax.get_xscale() == "log"


def test_hamming_histogram_separates_relevant_from_irrelevant_pairs():
    db = np.array([[0b0000_0000], [0b0000_0001], [0b1111_1111], [0b1111_1110]], dtype=np.uint8)
    labels = np.array([0, 0, 1, 1])
    ax = plot_hamming_histogram(db[:1], labels[:1], db, labels)
    relevant, irrelevant = ax.containers
    heights = lambda bars: np.array([b.get_height() for b in bars])  # noqa: E731
    # Query 0 is at distance 0 and 1 from the relevant items, 8 and 7 from the others.
    np.testing.assert_allclose(heights(relevant)[[0, 1]], [0.5, 0.5])
    np.testing.assert_allclose(heights(irrelevant)[[7, 8]], [0.5, 0.5])
    assert heights(relevant)[2:].sum() == 0 and heights(irrelevant)[:7].sum() == 0


def test_soft_permutation_heat_map_shows_the_matrix():
    permutation = np.eye(5)[::-1]
    ax = plot_soft_permutation(permutation, title="one anchor")
    np.testing.assert_array_equal(ax.get_images()[0].get_array(), permutation)
    assert ax.get_title() == "one anchor"


def test_retrieval_grid_frames_wrong_neighbours_in_red():
    images = np.random.default_rng(0).random((6, 4, 4))
    labels = np.array([0, 0, 1, 1, 0, 1])
    neighbours = np.array([[1, 2, 4], [3, 5, 0]])
    fig = plot_retrieval_grid(images[[0, 2]], images, neighbours, n_neighbours=3, query_labels=labels[[0, 2]],
                              database_labels=labels)
    axes = np.array(fig.axes).reshape(2, 4)
    np.testing.assert_array_equal(axes[1, 2].get_images()[0].get_array(), images[5])
    colours = [[matplotlib.colors.to_hex(ax.spines["top"].get_edgecolor()) for ax in row[1:]] for row in axes]
    green, red = matplotlib.colors.to_hex("tab:green"), matplotlib.colors.to_hex("tab:red")
    assert colours == [[green, red, green], [green, green, red]]
