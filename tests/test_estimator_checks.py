"""scikit-learn's estimator checks for every sortedhash estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sortedhash import (BinaryQuantizer, HammingNeighbors, ITQTransformer, LSHTransformer, PCAHashTransformer,
                        RerankedNeighbors)

from sortedhash.dask import DaskHammingNeighbors

from .conftest import small_nsh

# Expected failures, with the reason each check cannot pass.
_FLOAT_INPUT = (
    "feeds float (or object, complex, 1-D) data; HammingNeighbors (and DaskHammingNeighbors) take only "
    "packed uint8 codes and refuse anything else with a TypeError/ValueError by design. The "
    "same contract with uint8 codes is tested in tests/neighbors/test_hamming.py and tests/dask/"
)
HAMMING_EXPECTED_FAILURES = {
    "check_complex_data": _FLOAT_INPUT,
    "check_dict_unchanged": _FLOAT_INPUT,
    "check_dont_overwrite_parameters": _FLOAT_INPUT,
    "check_dtype_object": _FLOAT_INPUT,
    "check_estimators_dtypes": _FLOAT_INPUT,
    "check_estimators_empty_data_messages": _FLOAT_INPUT,
    "check_estimators_fit_returns_self": _FLOAT_INPUT,
    "check_estimators_nan_inf": _FLOAT_INPUT,
    "check_estimators_overwrite_params": _FLOAT_INPUT,
    "check_estimators_pickle": _FLOAT_INPUT,
    "check_f_contiguous_array_estimator": _FLOAT_INPUT,
    "check_fit1d": _FLOAT_INPUT,
    "check_fit2d_1feature": _FLOAT_INPUT,
    "check_fit2d_1sample": _FLOAT_INPUT,
    "check_fit2d_predict1d": _FLOAT_INPUT,
    "check_fit_check_is_fitted": _FLOAT_INPUT,
    "check_fit_idempotent": _FLOAT_INPUT,
    "check_fit_score_takes_y": _FLOAT_INPUT,
    "check_methods_sample_order_invariance": _FLOAT_INPUT,
    "check_methods_subset_invariance": _FLOAT_INPUT,
    "check_n_features_in": _FLOAT_INPUT,
    "check_n_features_in_after_fitting": _FLOAT_INPUT,
    "check_pipeline_consistency": _FLOAT_INPUT,
    "check_positive_only_tag_during_fit": _FLOAT_INPUT,
    "check_readonly_memmap_input": _FLOAT_INPUT,
}


def _expected_failures(estimator):
    searches_codes = isinstance(estimator, (HammingNeighbors, DaskHammingNeighbors))
    return HAMMING_EXPECTED_FAILURES if searches_codes else {}


@parametrize_with_checks(
    [
        small_nsh(max_epochs=1, batch_size=16),
        LSHTransformer(n_bits=8, random_state=0),
        # The checks fit on as few as 1 feature and a handful of samples.
        PCAHashTransformer(n_bits=1),
        ITQTransformer(n_bits=1, random_state=0),
        BinaryQuantizer(),
        HammingNeighbors(n_neighbors=1),
        DaskHammingNeighbors(n_neighbors=1),  # dask's local scheduler: no cluster needed
        RerankedNeighbors(n_neighbors=1),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
