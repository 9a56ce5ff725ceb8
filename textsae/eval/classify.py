"""The linear probe: the same logistic regression on codes and on the source representation.

Protocol (the test split is touched exactly once, after everything is chosen):

1. ``C`` is picked from ``EvalConfig.C_grid`` by mean accuracy over
   ``StratifiedKFold(cv_folds, shuffle=True, random_state=seed)`` folds of the *training* split.
   Ties go to the smaller ``C`` (stronger regularisation).
2. The model with that ``C`` is refit on the whole training split.
3. Accuracy and macro-F1 are measured on the test split.

``classifier="linear_svc"`` runs the same protocol with :class:`~sklearn.svm.LinearSVC` (squared
hinge loss, one-vs-rest, ``liblinear``) in place of the logistic regression.

With ``scale=True`` a :class:`~sklearn.preprocessing.MaxAbsScaler` (keeps sparsity) is fit inside
each fold on the fold's training part only, and again on all of train for the refit.

Solver: L2-penalised ``lbfgs`` on the multinomial (softmax) loss. On sparse, high-dimensional
inputs it needs only sparse matrix-vector products, handles any number of classes in one model
(``liblinear`` fits one-vs-rest models, one per class) and converges without the feature scaling
that ``sag``/``saga`` need to be fast. Within a fold the ``C`` grid is walked from small to large
with warm starts (as ``LogisticRegressionCV`` does), so larger ``C`` start near their answer.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import scipy.sparse as sp

from textsae._io import logger
from textsae.config.schema import EvalConfig
from textsae.errors import UserError
from textsae.results.run_report import ClassifierResult

if TYPE_CHECKING:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

# scikit-learn is imported inside the functions: it takes ~2 s, which `import textsae.eval` should not cost.

__all__ = ["CLASSIFIERS", "ClassifierResult", "evaluate_representation", "fit_probe", "select_C"]

Classifier = Literal["logreg", "linear_svc"]
CLASSIFIERS: tuple[Classifier, ...] = ("logreg", "linear_svc")
"""Linear classifiers the probe can fit: ``logreg`` (LogisticRegression) and ``linear_svc`` (LinearSVC)."""

_PARALLEL_MIN_ENTRIES = 1_000_000  # below this, starting worker processes costs more than it saves


def evaluate_representation(
    X_train: Any,
    y_train: Any,
    X_test: Any,
    y_test: Any,
    cfg: EvalConfig,
    *,
    scale: bool = False,
    n_jobs: int | None = None,
    classifier: Classifier = "logreg",
) -> ClassifierResult:
    """Choose ``C`` by CV on train, refit on train, and score on test (see the module docstring).

    Args:
        X_train: ``(n_train, n_features)`` scipy sparse matrix or 2-D array.
        y_train: ``(n_train,)`` class labels (ints or strings).
        X_test: ``(n_test, n_features)`` sparse matrix or array, same columns as ``X_train``.
        y_test: ``(n_test,)`` labels; used only for the final scores.
        cfg: ``C_grid``, ``cv_folds``, ``max_iter`` and ``seed`` are used.
        scale: Put a ``MaxAbsScaler`` before the classifier (fit on training folds only).
        n_jobs: Folds fitted in parallel (joblib processes). ``None`` uses
            ``min(cv_folds, cpu count)`` when ``X_train`` has at least 1,000,000 non-zeros, and 1
            below that; the result does not depend on it.
        classifier: ``logreg`` or ``linear_svc`` (see the module docstring).

    Returns:
        The scores, the chosen ``C`` and its CV accuracy, the split sizes and the fit time.

    Raises:
        UserError: Shapes disagree, labels are not 1-D, ``y_train`` has fewer than two classes,
            or no class has ``cv_folds`` training documents.
    """
    X_train, X_test = _as_features(X_train, "X_train"), _as_features(X_test, "X_test")
    y_train, y_test = _as_labels(y_train, "y_train"), _as_labels(y_test, "y_test")
    _check_split(X_train, y_train, "train")
    _check_split(X_test, y_test, "test")
    if X_train.shape[1] != X_test.shape[1]:
        raise UserError(f"X_test has {X_test.shape[1]} columns; expected {X_train.shape[1]}, like X_train.")
    from sklearn.metrics import accuracy_score, f1_score

    _check_classifier(classifier)
    start = time.perf_counter()
    model, best_C, cv_accuracy = _fit_best(X_train, y_train, cfg, scale=scale, n_jobs=n_jobs, classifier=classifier)
    fit_seconds = time.perf_counter() - start
    predicted = model.predict(X_test)
    return ClassifierResult(
        accuracy=float(accuracy_score(y_test, predicted)),
        macro_f1=float(f1_score(y_test, predicted, average="macro", zero_division=0)),
        C=best_C,
        cv_accuracy=cv_accuracy,
        n_train=X_train.shape[0],
        n_test=X_test.shape[0],
        fit_seconds=fit_seconds,
    )


def fit_probe(X_train: Any, y_train: Any, cfg: EvalConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """The evaluation's logistic regression on the training split: ``C`` by CV, then refit on all of it.

    Args:
        X_train: ``(n_train, n_features)`` sparse matrix or array.
        y_train: ``(n_train,)`` class ids.
        cfg: ``C_grid``, ``cv_folds``, ``max_iter`` and ``seed`` are used.

    Returns:
        ``(coef, intercept, C)``: ``coef`` is ``(m, n_features)`` and ``intercept`` ``(m,)``, with m = 1 for two
        classes (the decision value of the second class) and one row per class otherwise, as scikit-learn's
        ``decision_function`` computes them.
    """
    X_train, y_train = _as_features(X_train, "X_train"), _as_labels(y_train, "y_train")
    _check_split(X_train, y_train, "train")
    model, best_C, _ = _fit_best(X_train, y_train, cfg)
    return np.asarray(model.coef_, dtype=np.float64), np.asarray(model.intercept_, dtype=np.float64), best_C


def _fit_best(
    X_train: Any,
    y_train: np.ndarray,
    cfg: EvalConfig,
    *,
    scale: bool = False,
    n_jobs: int | None = None,
    classifier: Classifier = "logreg",
) -> tuple[Any, float, float]:
    """``C`` by :func:`select_C`, then the model refit on the whole training split (warning when it did not converge).

    Returns:
        ``(fitted model, C, mean CV accuracy of C)``.
    """
    from sklearn.exceptions import ConvergenceWarning

    best_C, cv_accuracy = select_C(X_train, y_train, cfg, scale=scale, n_jobs=n_jobs, classifier=classifier)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model = _make_model(best_C, cfg, scale=scale, warm_start=False, classifier=classifier).fit(X_train, y_train)
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        logger.warning(
            "%s(C=%g) did not converge in eval.max_iter=%d iterations; raise eval.max_iter.",
            classifier,
            best_C,
            cfg.max_iter,
        )
    return model, best_C, cv_accuracy


def select_C(
    X_train: Any,
    y_train: Any,
    cfg: EvalConfig,
    *,
    scale: bool = False,
    n_jobs: int | None = None,
    classifier: Classifier = "logreg",
) -> tuple[float, float]:
    """Pick ``C`` from ``cfg.C_grid`` by stratified K-fold CV accuracy on the training split.

    Args:
        X_train: ``(n_train, n_features)`` sparse matrix or 2-D array.
        y_train: ``(n_train,)`` labels.
        cfg: ``C_grid``, ``cv_folds``, ``max_iter`` and ``seed`` are used.
        scale: Fit a ``MaxAbsScaler`` on each fold's training part before the classifier.
        n_jobs: As in :func:`evaluate_representation`.
        classifier: ``logreg`` or ``linear_svc``.

    Returns:
        ``(C, mean CV accuracy of that C)``; ties go to the smaller ``C``.

    Raises:
        UserError: No class has ``cv_folds`` documents, or fewer than two classes.
    """
    from joblib import Parallel, delayed
    from sklearn.model_selection import StratifiedKFold

    _check_classifier(classifier)
    X_train, y_train = _as_features(X_train, "X_train"), _as_labels(y_train, "y_train")
    _check_split(X_train, y_train, "train")
    _check_folds(y_train, cfg.cv_folds)
    grid = sorted(float(c) for c in set(cfg.C_grid))  # ascending: warm starts go from strong to weak regularisation
    with warnings.catch_warnings():  # _check_folds has said so in one line; sklearn's warning shows source lines
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splitter = StratifiedKFold(cfg.cv_folds, shuffle=True, random_state=cfg.seed)
        folds = list(splitter.split(np.zeros(len(y_train)), y_train))
    jobs = _n_jobs(n_jobs, X_train, cfg.cv_folds)
    results = Parallel(n_jobs=jobs)(
        delayed(_fold_accuracies)(X_train, y_train, train_rows, val_rows, grid, cfg, scale, classifier)
        for train_rows, val_rows in folds
    )
    accuracies = np.array([fold[0] for fold in results])  # (cv_folds, len(grid))
    unconverged = sorted({c for fold in results for c in fold[1]})
    if unconverged:
        logger.warning(
            "%s did not converge for C in %s on some CV folds; raise eval.max_iter.", classifier, unconverged
        )
    mean = accuracies.mean(axis=0)
    best = int(np.argmax(mean))  # first maximum = smallest C among ties
    logger.debug("CV accuracy by C: %s", dict(zip(grid, mean.round(4).tolist())))
    return grid[best], float(mean[best])


def _fold_accuracies(
    X: Any,
    y: np.ndarray,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    grid: list[float],
    cfg: EvalConfig,
    scale: bool,
    classifier: Classifier,
) -> tuple[list[float], list[float]]:
    """Validation accuracy of each ``C`` (ascending, warm-started) on one fold; and the ``C`` that did not converge."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import MaxAbsScaler

    X_fit, X_val = X[train_rows], X[val_rows]
    if scale:
        scaler = MaxAbsScaler().fit(X_fit)
        X_fit, X_val = scaler.transform(X_fit), scaler.transform(X_val)
    model = _make_model(grid[0], cfg, scale=False, warm_start=True, classifier=classifier)
    accuracies, unconverged = [], []
    for C in grid:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            model.set_params(C=C).fit(X_fit, y[train_rows])
        if any(issubclass(w.category, ConvergenceWarning) for w in caught):
            unconverged.append(C)
        accuracies.append(float(model.score(X_val, y[val_rows])))
    return accuracies, unconverged


def _make_model(
    C: float, cfg: EvalConfig, *, scale: bool, warm_start: bool, classifier: Classifier = "logreg"
) -> LogisticRegression | LinearSVC | Pipeline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MaxAbsScaler
    from sklearn.svm import LinearSVC

    if classifier == "linear_svc":  # liblinear has no warm start
        model = LinearSVC(C=C, max_iter=cfg.max_iter, random_state=cfg.seed)
    else:
        model = LogisticRegression(C=C, solver="lbfgs", max_iter=cfg.max_iter, warm_start=warm_start)
    return make_pipeline(MaxAbsScaler(), model) if scale else model


def _check_classifier(classifier: str) -> None:
    if classifier not in CLASSIFIERS:
        raise UserError(f"The 'classifier' parameter must be one of {list(CLASSIFIERS)}. Got {classifier!r} instead.")


def _n_jobs(n_jobs: int | None, X: Any, cv_folds: int) -> int:
    if n_jobs is not None:
        return n_jobs
    entries = X.nnz if sp.issparse(X) else X.size
    return min(cv_folds, os.cpu_count() or 1) if entries >= _PARALLEL_MIN_ENTRIES else 1


def _as_features(X: Any, name: str) -> Any:
    if sp.issparse(X):
        return sp.csr_matrix(X)
    array = np.asarray(X)
    if array.ndim != 2:
        raise UserError(
            f"{name} must be a 2-D sparse matrix or array (documents × features). Got shape {array.shape!r} instead."
        )
    return array.astype(np.float32) if array.dtype == np.float16 else array


def _as_labels(y: Any, name: str) -> np.ndarray:
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise UserError(f"{name} must be a 1-D sequence of class labels. Got shape {labels.shape!r} instead.")
    return labels


def _check_split(X: Any, y: np.ndarray, split: str) -> None:
    if X.shape[0] != len(y):
        raise UserError(
            f"X_{split} has {X.shape[0]} rows but y_{split} has {len(y)} labels; expected one label per row."
        )
    if X.shape[0] == 0:
        raise UserError(f"The {split} split is empty; expected at least one document.")
    if split == "train" and len(np.unique(y)) < 2:
        raise UserError(f"y_train holds a single class ({np.unique(y)!r}); a classifier needs at least two.")


def require_fold_sizes(y: np.ndarray, cv_folds: int) -> None:
    """Refuse training labels that ``cv_folds`` stratified folds cannot split (checked before any work is done).

    Raises:
        UserError: No class has ``cv_folds`` documents.
    """
    counts = np.unique(y, return_counts=True)[1]
    if counts.size and counts.max() < cv_folds:
        raise UserError(
            f"eval.cv_folds={cv_folds} needs a class with at least {cv_folds} training documents; the largest has {counts.max()}. "
            f"Lower eval.cv_folds or use more data."
        )


def _check_folds(y: np.ndarray, cv_folds: int) -> None:
    require_fold_sizes(y, cv_folds)
    classes, counts = np.unique(y, return_counts=True)
    if counts.min() < cv_folds:
        logger.warning(
            "Class %r has %d training documents, fewer than eval.cv_folds=%d: some CV folds will not see it.",
            classes[np.argmin(counts)].item(),
            int(counts.min()),
            cv_folds,
        )
