"""One readable training function per method, each `fit(config, split, reporter) -> Result`."""

from emoref.methods import baselines, epr, ipr, reference

METHODS = {
    "ipr": ipr.fit,
    "baseline": baselines.fit_baseline,
    "baseline_star": baselines.fit_baseline_star,
    "supervised": baselines.fit_supervised,
    "epr": epr.fit,
    # The classical reference rows (openSMILE functionals + logistic regression), seconds each.
    "reference": reference.fit_reference,
    "reference_supervised": reference.fit_reference_supervised,
}
