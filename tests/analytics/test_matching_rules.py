"""MatchIt's greedy nearest-neighbour rule on frames small enough to match by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analytics.matching import _greedy_matches, match_nearest


def pairs_of(distance: list[float], treated: list[bool], *, width: float = np.inf, ratio: int = 1):
    """Pairs by row position, treated units taking turns in descending distance (stable)."""
    treated_mask = np.array(treated)
    rows = np.flatnonzero(treated_mask)
    turn_order = rows[np.argsort(-np.array(distance)[rows], kind="stable")]
    return _greedy_matches(np.array(distance), treated_mask, turn_order, width, ratio)


def test_equally_near_controls_below_and_above_the_one_below_wins() -> None:
    # treated at 0.5; controls at 0.25 and 0.75 are exactly 0.25 away either side
    assert pairs_of([0.5, 0.75, 0.25], [True, False, False]) == [(0, 2)]


def test_nearest_control_is_taken_whichever_side() -> None:
    assert pairs_of([0.5, 0.7, 0.2], [True, False, False]) == [(0, 1)]


def test_controls_with_equal_distance_are_taken_in_stably_sorted_order() -> None:
    # MatchIt's nn_matchC walks the stably sorted units outwards from the treated unit: among
    # equal distances below it the later row is nearer, above it the earlier one (issue 14's
    # minimal case: treated at 50, controls at 25 in rows 2 and 3 -> MatchIt takes row 3).
    assert pairs_of([0.5, 0.25, 0.25], [True, False, False]) == [(0, 2)]
    assert pairs_of([50, 25, 25], [True, False, False]) == [(0, 2)]
    assert pairs_of([0.5, 0.75, 0.75], [True, False, False]) == [(0, 1)]


def test_a_control_tied_with_the_treated_unit_sits_by_data_order() -> None:
    # Controls with the treated unit's own distance: an earlier row sits left of it (below),
    # a later row right of it; both are 0 away and the one below wins.
    assert pairs_of([0.4, 0.5, 0.5, 0.5], [False, False, True, False]) == [(2, 1)]
    assert pairs_of([0.5, 0.5, 0.6], [True, False, False]) == [(0, 1)]


def test_ratio_two_keeps_the_sorted_order_rule_in_the_second_pass() -> None:
    # Treated at 0.5 takes the later of the two tied controls below first, then the earlier.
    assert pairs_of([0.5, 0.3, 0.3], [True, False, False], ratio=2) == [(0, 2), (0, 1)]


def test_treated_units_take_turns_from_the_largest_score_without_replacement() -> None:
    # Both treated want the control at 0.6; the one with the larger score (0.62) gets it.
    distance = [0.58, 0.62, 0.6, 0.3]
    assert pairs_of(distance, [True, True, False, False]) == [(1, 2), (0, 3)]


def test_caliper_leaves_a_treated_unit_unmatched_but_not_the_others() -> None:
    distance = [0.9, 0.5, 0.52, 0.1]
    assert pairs_of(distance, [True, True, False, False], width=0.1) == [(1, 2)]


def test_ratio_two_takes_second_controls_in_a_second_pass() -> None:
    distance = [0.8, 0.4, 0.79, 0.41, 0.78, 0.42]
    treated = [True, True, False, False, False, False]
    assert pairs_of(distance, treated, ratio=2) == [(0, 2), (1, 3), (0, 4), (1, 5)]


def test_second_pass_skips_treated_units_left_unmatched_in_the_first() -> None:
    distance = [0.8, 0.1, 0.79, 0.78]
    treated = [True, True, False, False]
    assert pairs_of(distance, treated, width=0.05, ratio=2) == [(0, 2), (0, 3)]


@pytest.fixture
def saturated() -> pd.DataFrame:
    """One binary covariate, so the propensity score is the treated share within each level:
    x=0 → 2/6 (ids 1–6), x=1 → 3/5 (ids 7–11); all scores within a level are tied."""
    return pd.DataFrame(
        {
            "id": range(1, 12),
            "treated": [1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0],
            "x": [0] * 6 + [1] * 5,
        }
    )


def test_tied_scores_match_in_data_order_and_the_caliper_excludes(saturated: pd.DataFrame) -> None:
    result = match_nearest(saturated, "treated", ["x"])
    pairs = list(result.pairs[["treated", "control"]].itertuples(index=False, name=None))
    # 7, 8, 9 go first (score 0.6, data order); 9 finds no control within 0.2 SD; then 1, 2.
    assert pairs == [(7, 10), (8, 11), (1, 3), (2, 4)]
    assert result.propensity["ps"].iloc[[0, 6]].tolist() == pytest.approx([2 / 6, 3 / 5])
    assert (result.n_treated, result.n_treated_matched, result.n_control_matched) == (5, 4, 4)


def test_without_caliper_the_latest_of_tied_controls_below_is_taken(saturated: pd.DataFrame) -> None:
    result = match_nearest(saturated, "treated", ["x"], caliper=None)
    pairs = list(result.pairs[["treated", "control"]].itertuples(index=False, name=None))
    # 9 now reaches down to the tied controls 3–6 and takes the nearest in sorted order, the last
    # (6); 1 and 2 sit left of all of them and take the first ones above (3, 4).
    assert pairs == [(7, 10), (8, 11), (9, 6), (1, 3), (2, 4)]


def test_matched_rows_carry_subclass_and_unit_weights(saturated: pd.DataFrame) -> None:
    result = match_nearest(saturated, "treated", ["x"])
    assert result.matched["id"].tolist() == [1, 2, 3, 4, 7, 8, 10, 11]
    assert result.matched.set_index("id")["subclass"].to_dict() == {
        7: 1,
        10: 1,
        8: 2,
        11: 2,
        1: 3,
        3: 3,
        2: 4,
        4: 4,
    }
    assert (result.matched["weight"] == 1).all()


def test_logit_scale_matches_on_the_linear_predictor(saturated: pd.DataFrame) -> None:
    result = match_nearest(saturated, "treated", ["x"], scale="logit")
    assert result.caliper_width == pytest.approx(0.2 * result.propensity["logit"].std())


def test_large_cohort_completes() -> None:
    rng = np.random.default_rng(7)
    n = 100_000
    frame = pd.DataFrame({"id": np.arange(n), "age": rng.normal(50, 10, n), "male": rng.integers(0, 2, n)})
    frame["treated"] = (rng.random(n) < 1 / (1 + np.exp(-(frame["age"] - 50) / 10))).astype(int)
    result = match_nearest(frame, "treated", ["age", "male"])
    assert result.n_treated_matched == len(result.pairs)
    assert result.pairs["control"].is_unique
    ps = result.propensity.set_index("id")["ps"]
    gaps = np.abs(ps[result.pairs["treated"]].to_numpy() - ps[result.pairs["control"]].to_numpy())
    assert gaps.max() <= result.caliper_width


def test_two_to_one_matching_weights_controls_as_matchit(saturated: pd.DataFrame) -> None:
    result = match_nearest(saturated, "treated", ["x"], ratio=2)
    pairs = list(result.pairs[["treated", "control"]].itertuples(index=False, name=None))
    # Second pass: 7 and 8 find no control within the caliper; 1 and 2 take 5 and 6.
    assert pairs == [(7, 10), (8, 11), (1, 3), (1, 5), (2, 4), (2, 6)]  # grouped by subclass
    # Controls weigh 1/(set size), rescaled to sum to the 6 matched controls: 1.5 and 0.75.
    weights = result.matched.set_index("id")["weight"].to_dict()
    assert weights == pytest.approx(
        {1: 1, 2: 1, 7: 1, 8: 1, 10: 1.5, 11: 1.5, 3: 0.75, 4: 0.75, 5: 0.75, 6: 0.75}
    )
