"""scikit-learn's estimator checks for every sortedhash estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sortedhash import ITQTransformer, LSHTransformer, PCAHashTransformer

from .conftest import small_nsh

# Expected failures, with the reason each check cannot pass.
NSH_EXPECTED_FAILURES = {}


@parametrize_with_checks(
    [
        small_nsh(max_epochs=1, batch_size=16),
        LSHTransformer(n_bits=8, random_state=0),
        # The checks fit on as few as 1 feature and a handful of samples.
        PCAHashTransformer(n_bits=1),
        ITQTransformer(n_bits=1, random_state=0),
    ],
    expected_failed_checks=lambda est: NSH_EXPECTED_FAILURES,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
