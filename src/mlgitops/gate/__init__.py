"""The champion/challenger gate: promote only a model that is not worse than the one it replaces.

The champion is the model of the release committed at `gate.base` (default HEAD, the release
this change would replace), read the way deploys read old revisions: its release record and
model card from Git, its model file by dvc.lock's md5 from the DVC cache or remote. The
challenger is this tree's model. Both score the same rows, this tree's test split (the champion
through its own feature list), each cut at its own threshold, so the comparison is paired:

- ROC AUC: DeLong's test of the difference (challenger - champion);
- expected cost per 1,000 transactions: a seeded paired bootstrap of the per-row cost
  difference (false_positive_cost per false alarm, false_negative_cost per missed positive).

Each metric gets a two-sided (1 - alpha) interval of the difference and a non-inferiority margin
m: PASS when the whole interval is on the good side of -m (not worse by m, shown: a one-sided
test at alpha/2, as non-inferiority trials do it), FAIL when it is entirely beyond -m (worse by
more than m, shown), INCONCLUSIVE otherwise. The verdict is FAIL if either metric FAILs, PASS if
both PASS, INCONCLUSIVE otherwise. Each FAIL test errs with probability at most alpha/2, so two
equal models FAIL with probability at most alpha whatever the test set's size, and a model
worse by the margin PASSes with at most alpha/2. The MDE beside each figure is the smallest
true difference this test set detects with the configured power, (z_{1-alpha/2} + z_power) *
SE: with a margin below it even an equal challenger is mostly INCONCLUSIVE.

No champion (the base commit has no release: a first release) passes with that reason
(`against_base`), as does `gate.base: null`. Stage `gate` writes the verdict, whatever it is, to
reports/gate.json and reports/gate.md; the release stages (rules, package, report) act only on a
PASS and otherwise keep their outputs (src/mlgitops/verdict.py). `mlgitops report pr` runs the
same gate between two revisions (mlgitops.reports.pr).

Modules: contender (the two sides: a release read from Git and DVC, this tree's model), compare
(the paired statistics and the verdict), markdown (the verdict as a Markdown section).
"""
