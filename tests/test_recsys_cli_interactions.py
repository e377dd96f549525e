"""``python -m recsys evaluate FILE --protocol leave-last-out|time`` on small files."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from recsys.__main__ import main
from recsys.cli.interactions import cli_config, leave_last_out_split, read_interactions


def write_csv(path, rows, columns):
    frame = pd.DataFrame(rows, columns=columns)
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as fh:
            frame.to_csv(fh, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def test_leave_last_out_split_by_hand(tmp_path):
    # u1: a b a c d -> distinct by first position a b c d: test d, validation c, trains a b
    # u2: x y (2 distinct items): only trains; u3: b c e (shuffled rows): test e, val c
    rows = [
        ("u1", "a", 0), ("u1", "b", 1), ("u1", "a", 2), ("u1", "c", 3), ("u1", "d", 4),
        ("u2", "x", 0), ("u2", "y", 1),
        ("u3", "e", 7), ("u3", "b", 5), ("u3", "c", 6),
    ]  # fmt: skip
    path = write_csv(tmp_path / "i.csv.gz", rows, ["user_id", "item_id", "seq_pos"])
    frame, order = read_interactions(path)
    assert order == "seq_pos"
    split, facts = leave_last_out_split(frame, order, cli_config(1))
    ds = split.test.dataset

    def pairs(matrix, d):
        m = matrix.tocoo()
        return {(d.users.ids[u], d.items.ids[i]) for u, i in zip(m.row, m.col, strict=True)}

    assert pairs(split.test.truth, ds) == {("u1", "d"), ("u3", "e")}
    vds = split.validation.dataset
    assert pairs(split.validation.truth, vds) == {("u1", "c"), ("u3", "c")}
    assert pairs(ds.interactions, ds) == {
        ("u1", "a"), ("u1", "b"), ("u1", "c"), ("u2", "x"), ("u2", "y"), ("u3", "b"), ("u3", "c"),
    }  # fmt: skip
    assert pairs(vds.interactions, vds) == {
        ("u1", "a"), ("u1", "b"), ("u2", "x"), ("u2", "y"), ("u3", "b"),
    }  # fmt: skip
    # training items are excluded from the ranking; repeats count in the weight (a twice)
    assert pairs(ds.known_positives, ds) == pairs(ds.interactions, ds)
    u1, a = ds.users.index(["u1"])[0], ds.items.index(["a"])[0]
    assert ds.interactions[u1, a] == 2.0
    assert facts["users_with_test_item"] == 2


def _synthetic_rows(seed: int = 0, n_users: int = 300, n_items: int = 120):
    """Users walk a ring of items: the next item is near the last one (learnable)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        steps = np.cumsum(rng.integers(1, 4, size=rng.integers(4, 12)))
        for pos, s in enumerate(steps):
            rows.append((f"u{u}", f"i{(start + s) % n_items}", 1_600_000_000 + 3600 * (u + pos)))
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["leave-last-out", "time"])
def test_the_last_line_is_the_json_summary(tmp_path, capsys, protocol):
    path = write_csv(tmp_path / "i.csv", _synthetic_rows(), ["user_id", "item_id", "timestamp"])
    assert main(["evaluate", str(path), "--protocol", protocol, "--max-users", "250"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert summary["protocol"] == protocol
    assert {"popularity", "cooccurrence", "als", "lightfm", "lightfm_blend"} <= set(
        summary["models"]
    )
    for figures in summary["models"].values():
        assert set(figures) == {"ndcg@10", "hr@10", "recall@20", "fit_s"}
    assert summary["n_test_users"] > 0 and summary["evaluate_s"] > 0 and summary["fit_s"] > 0
    assert isinstance(summary["dod_passed"], bool)
    assert summary["candidate"] in summary["models"]
    # LightFM alone against ALS: the point ratio of the table's nDCG@10 with its interval
    vs = summary["lightfm_vs_als"]
    m = summary["models"]
    assert vs["ndcg@10"] == pytest.approx(m["lightfm"]["ndcg@10"] / m["als"]["ndcg@10"], rel=1e-3)
    assert vs["ci95"][0] <= vs["ndcg@10"] <= vs["ci95"][1]
    if protocol == "leave-last-out":
        assert summary["n_test_users"] == 250  # every sampled user has >= 4 distinct items
        # a ring walk: co-occurrence of neighbours beats popularity by far
        m = summary["models"]
        assert m["cooccurrence"]["hr@10"] > 2 * m["popularity"]["hr@10"]
    # the same file, seed and config give the same figures (fit times aside)
    assert main(["evaluate", str(path), "--protocol", protocol, "--max-users", "250"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    strip = lambda s: {k: {m: v for m, v in f.items() if m != "fit_s"} for k, f in s.items()}  # noqa: E731
    assert strip(again["models"]) == strip(summary["models"])


def test_a_file_without_an_order_column_is_refused(tmp_path):
    path = write_csv(tmp_path / "i.csv", [("u", "i")], ["user_id", "item_id"])
    with pytest.raises(ValueError, match="timestamp"):
        read_interactions(path)


def test_the_contract_leaves_out_clauses_about_baselines_a_bare_file_cannot_support():
    from recsys.cli.interactions import cli_contract

    contract = cli_contract(cli_config(3), seed=3)
    ids = {c["id"] for c in contract["clauses"]}
    assert "not_worse_than_recently_viewed" not in ids
    assert "cold_recall_vs_category_popularity" not in ids
    assert {"ndcg_vs_best_baseline", "ndcg_vs_popularity", "coverage_floor"} <= ids
    assert contract["baselines"] == ["popularity", "cooccurrence", "als"]
    assert contract["bootstrap"]["seed"] == 3
