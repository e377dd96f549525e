"""Session recommender (issue 19): hand-worked neighbourhood scores, the protocol, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.__main__ import main as recsys_main
from recsys.session import data as SD
from recsys.session import models as M
from recsys.session import protocol as P

A, B, C, D_ = 0, 1, 2, 3  # item codes


def sessions(*seqs: list[int]) -> SD.Sessions:
    lengths = [len(s) for s in seqs]
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs])
    return SD.Sessions(indptr, items, np.arange(len(seqs), dtype=np.float64))


# train: [A, B, C], [A, B], [B, D]; sessions holding A: 2, B: 3, C: 1, D: 1
TRAIN = sessions([A, B, C], [A, B], [B, D_])


def dense(scores) -> np.ndarray:
    return np.asarray(scores.todense())


def test_cosine_cooccurrence_by_hand():
    m = M.Cooccurrence().fit(TRAIN, 4)
    s = dense(m.score(sessions([A])))[0]
    # A-B: 2 sessions / sqrt(2 * 3); A-C: 1 / sqrt(2 * 1); A-D never together
    assert s == pytest.approx([0.0, 2 / np.sqrt(6), 1 / np.sqrt(2), 0.0])
    # summed over the distinct revealed items, no position weights: [B, A, B] == {A, B}
    s2 = dense(m.score(sessions([B, A, B])))[0]
    assert s2[C] == pytest.approx(1 / np.sqrt(2) + 1 / np.sqrt(3))
    assert s2[D_] == pytest.approx(1 / np.sqrt(3))


def test_session_knn_rules_and_position_weights_by_hand():
    # rules only, window 2, divided by the source item's session count (source_norm=1)
    cfg = M.SessionKNNConfig(
        rules_weight=1.0, window=2, decay=1.0, source_norm=1.0, recency=0.0, neighbours=10
    )
    model = M.SessionKNN(cfg).fit(TRAIN, 4)
    table = dense(model.table)
    # A->B twice (gap 1) / 2 sessions with A; A->C once at gap 2: 0.5 / 2; B->C, B->D: 1 / 3
    assert table[A] == pytest.approx([0, 1.0, 0.25, 0])
    assert table[B] == pytest.approx([0, 0, 1 / 3, 1 / 3])
    assert table[C] == pytest.approx([0, 0, 0, 0])  # nothing follows C
    # prefix [A, B]: B is last (weight 1), A one before (weight (1 + 1) ** -1 = 0.5)
    s = dense(model.score(sessions([A, B])))[0]
    assert s[C] == pytest.approx(0.5 * 0.25 + 1 / 3)
    assert s[D_] == pytest.approx(1 / 3)


def test_session_knn_blend_and_cosine_normalisation_by_hand():
    cfg = M.SessionKNNConfig(
        rules_weight=0.5, window=1, decay=0.0, source_norm=0.5, recency=0.0, neighbours=1
    )
    table = dense(M.SessionKNN(cfg).fit(TRAIN, 4).table)
    # row A: rules A->B 2 / sqrt(2 * 3); co A-B 2 / sqrt(6), A-C 1 / sqrt(2); keep 1 neighbour
    assert table[A] == pytest.approx([0, 2 / np.sqrt(6), 0, 0], rel=1e-6)
    # row C: no rule from C; co C-A 1/sqrt(2) (kept), C-B 1/sqrt(3): half of the cosine
    assert table[C] == pytest.approx([0.5 / np.sqrt(2), 0, 0, 0], rel=1e-6)


def test_recency_weights_favour_recent_sessions():
    w = M.recency_weights(TRAIN, 2.0)
    assert w == pytest.approx([np.exp(-2.0), np.exp(-1.0), 1.0])
    assert M.recency_weights(TRAIN, 0.0) == pytest.approx([1, 1, 1])


def test_last_item_cases_never_reveal_the_target_or_later_events():
    test = sessions([A, B, C], [D_], [C, A])
    cases = SD.last_item_cases(test)
    assert cases.target.tolist() == [C, A]  # the 1-event session is dropped
    assert cases.prefix.items.tolist() == [A, B, C]
    assert cases.prefix.indptr.tolist() == [0, 2, 3]


def test_session_order_follows_pos_not_file_order():
    frame = SD.check_session_frame(
        pd.DataFrame({"session_id": ["s", "s", "s"], "item_id": ["z", "x", "y"], "pos": [2, 0, 1]})
    )
    items = pd.Index(["x", "y", "z"])
    cases = SD.last_item_cases(SD.to_sessions(frame, items))
    assert items[cases.target].tolist() == ["z"]
    assert items[cases.prefix.items].tolist() == ["x", "y"]


def test_target_ranks_ties_popularity_fallback_and_revealed():
    # popularity (sessions): item 0: 5, 1: 4, 2: 3, 3: 2, 4: 1
    pop_key = P.popularity_key(np.array([5, 4, 3, 2, 1]))

    scores = sp.csr_matrix(
        np.array(
            [
                [0.0, 0.5, 0.0, 0.5, 0.9],  # target 3 ties with 1 (more popular): rank 2
                [0.0, 0.5, 0.0, 0.0, 0.0],  # target 4 unscored; 0 revealed: 1, 2, 3 above
                [0.0, 0.5, 0.0, 0.0, 0.0],  # target 0 was revealed: never ranked
                [0.0, 0.0, 0.0, 0.0, 0.0],  # target unknown (-1)
            ]
        )
    )
    cases = SD.Cases(sessions([4], [0], [0], [2]), np.array([3, 4, 0, -1]))
    ranks = P.target_ranks(scores, cases, pop_key)
    # row 0: item 4 revealed (its 0.9 dropped); 1 ties with 3 and is more popular: rank 1
    assert ranks.tolist() == [1, 3, P.UNRANKED, P.UNRANKED]
    hr, mrr = P.hr_mrr(ranks, cutoff=2)
    assert hr == pytest.approx(1 / 4)
    assert mrr == pytest.approx((1 / 2) / 4)


def test_time_split_holds_out_the_last_sessions():
    frame = SD.check_session_frame(
        pd.DataFrame(
            {
                "session_id": [f"s{i}" for i in range(10) for _ in range(2)],
                "item_id": ["a", "b"] * 10,
                "timestamp": [t for i in range(10) for t in (100 * i, 100 * i + 1)],
            }
        )
    )
    split = SD.time_split(frame)
    assert frame.loc[split == "test", "session_id"].unique().tolist() == ["s9"]


def write_csv(path, rows, header="session_id,item_id,pos,split"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def test_cli_on_a_small_csv(tmp_path, capsys):
    rows = []
    train = [("a", "b")] * 3 + [("c", "d")] * 2 + [("a", "e")]
    for i, seq in enumerate(train):
        rows += [f"t{i},{item},{pos},train" for pos, item in enumerate(seq)]
    for i, seq in enumerate([("a", "b"), ("c", "d"), ("e", "a"), ("b",)]):
        rows += [f"q{i},{item},{pos},test" for pos, item in enumerate(seq)]
    f = tmp_path / "s.csv"
    write_csv(f, rows)
    rc = recsys_main(["evaluate", str(f), "--protocol", "session-last-item"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0
    res = json.loads(out[-1])
    assert res["protocol"] == "session-last-item"
    assert res["n_test_sessions"] == 3  # the 1-event session has nothing to reveal
    assert res["candidate"] == "session_stan"
    m = res["models"]
    # sessions holding: a 4, b 3, c 2, d 2, e 1. Co-occurrence: every target is the best
    # scored item. Popularity: b first after a; d third after a, b (c revealed); a first
    assert m["cooccurrence"]["hr@20"] == 1.0 and m["cooccurrence"]["mrr@20"] == 1.0
    assert m["popularity"]["hr@20"] == 1.0
    assert m["popularity"]["mrr@20"] == pytest.approx((1 + 1 / 3 + 1) / 3, abs=1e-5)
    assert m["session_knn"]["mrr@20"] == 1.0
    assert m["session_stan"]["mrr@20"] == 1.0


def test_cli_rejects_a_file_without_order(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    write_csv(f, ["s,a", "s,b"], header="session_id,item_id")
    rc = recsys_main(["evaluate", str(f), "--protocol", "session-last-item"])
    assert rc == 2
    assert "pos" in capsys.readouterr().err


def test_cli_rejects_bad_split_values(tmp_path, capsys):
    f = tmp_path / "bad.csv"
    write_csv(f, ["s,a,0,valid", "s,b,1,train"])
    assert recsys_main(["evaluate", str(f), "--protocol", "session-last-item"]) == 2
    assert "valid" in capsys.readouterr().err


# --- training DAG entry, published files ------------------------------------------------------
def events_frame(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "event_at"]).assign(
        event_at=lambda f: pd.to_datetime(f["event_at"])
    )


def test_sessionize_splits_after_30_minutes_and_keeps_product_events():
    from recsys.session.training import sessionize

    ev = events_frame(
        [
            ("u1", "a", "product_view", "2026-01-01 10:00:00"),
            ("u1", "b", "add_to_cart", "2026-01-01 10:30:00"),  # exactly 30 min: same session
            ("u1", "c", "product_view", "2026-01-01 11:00:01"),  # 30 min 1 s: a new one
            ("u1", "d", "remove_from_cart", "2026-01-01 11:01:00"),  # not a session event
            ("u2", "a", "purchase", "2026-01-01 10:05:00"),
        ]
    )
    s = sessionize(ev)
    groups = s.groupby("session_id")["item_id"].apply(list).tolist()
    assert sorted(groups) == [["a"], ["a", "b"], ["c"]]


def test_session_split_tests_only_visitors_unknown_at_t():
    from recsys.session.training import session_split, sessionize

    ev = events_frame(
        [
            ("old", "a", "product_view", "2026-01-01 09:00:00"),
            ("old", "b", "product_view", "2026-01-02 09:00:00"),  # known visitor after T
            ("new", "c", "product_view", "2026-01-02 09:00:00"),
            ("new", "d", "product_view", "2026-01-02 09:01:00"),
        ]
    )
    s = sessionize(ev)
    t = pd.Timestamp("2026-01-02", tz="UTC").timestamp()
    split = session_split(s, t)
    by_item = dict(zip(s["item_id"], split, strict=True))
    assert by_item == {"a": "train", "b": "unused", "c": "test", "d": "test"}


def test_session_clause_pass_fail_and_too_few_sessions():
    from recsys.session.evaluation import SessionEvaluation
    from recsys.session.protocol import ModelResult
    from recsys.session.training import DEFAULT_CLAUSE, check_session_clause

    def ev(n: int, ours: float, base: float) -> SessionEvaluation:
        res = {
            "cooccurrence": ModelResult("cooccurrence", base, 0.1, 0.0, np.zeros(0)),
            "session_stan": ModelResult("session_stan", ours, 0.1, 0.0, np.zeros(0)),
        }
        return SessionEvaluation(n, res, None, None, pd.Index([]))  # type: ignore[arg-type]

    ok = check_session_clause(ev(200, 0.33, 0.30), DEFAULT_CLAUSE)
    assert ok["status"] == "pass" and ok["required"] == pytest.approx(0.33)
    assert check_session_clause(ev(200, 0.32, 0.30), DEFAULT_CLAUSE)["status"] == "fail"
    assert check_session_clause(ev(99, 0.9, 0.30), DEFAULT_CLAUSE)["status"] == "fail"


def test_served_scores_equal_the_library_scores(tmp_path):
    from include.serving.session import load_session_index
    from recsys.session.publish import write_session_model

    cfg = M.SessionKNNConfig(rules_weight=0.5, window=2, decay=1.0, recency=1.0)
    model = M.SessionKNN(cfg).fit(TRAIN, 4)
    items = pd.Index(["A", "B", "C", "D"])
    write_session_model(tmp_path, model.table, items, cfg, {"hr@20": 0.5}, {"A": "shoes"})
    index = load_session_index(tmp_path)
    rows, scores = index.score(["A", "B", "A"])
    served = dict(zip(index.ids[rows].tolist(), scores.tolist(), strict=True))
    lib = dense(model.score(sessions([A, B, A])))[0]
    assert served == pytest.approx({items[j]: lib[j] for j in np.flatnonzero(lib)}, rel=1e-6)
    assert index.category_of_session(["B", "A", "X"]) == "shoes"


def test_stan_neighbourhood_scores_by_hand():
    from recsys.session import knn as K

    # no recency, no idf: a training session weighs 1 / sqrt(its distinct items)
    cfg = K.StanConfig(k=2, l1=1.0, l3=1.0, recency=0.0, idf=0.0, sample=10)
    index = K.SessionIndex.build(TRAIN, 4, cfg)
    e = np.exp(-1.0)
    # [A]: neighbours [A, B, C] (sim 1/sqrt(3)) and [A, B] (1/sqrt(2)), anchored at A:
    # B one step away (e^-1) in both, C two steps away (e^-2) in the first; A itself: never
    s = dense(K.knn_scores(index, sessions([A]), cfg))[0]
    assert s == pytest.approx([0, e * (1 / np.sqrt(2) + 1 / np.sqrt(3)), e**2 / np.sqrt(3), 0])
    # k=1 keeps only the most similar session, [A, B]
    one = K.StanConfig(k=1, l1=1.0, l3=1.0, recency=0.0, idf=0.0, sample=10)
    assert dense(K.knn_scores(index, sessions([A]), one))[0] == pytest.approx(
        [0, e / np.sqrt(2), 0, 0]
    )
    # [A, B]: A weighs e^-1 (one event before the end), B 1, both / sqrt(2). sims:
    # [A,B,C] (1 + e^-1) / sqrt(6) = 0.558, [A,B] (1 + e^-1) / 2, [B,D] 1 / 2 (k=3 keeps all).
    # The anchor is B, the most recent shared item: C is one step after it in [A,B,C] (not
    # two, as from A); D one step after B in [B,D]
    three = K.StanConfig(k=3, l1=1.0, l3=1.0, recency=0.0, idf=0.0, sample=10)
    s = dense(K.knn_scores(index, sessions([A, B]), three))[0]
    assert s == pytest.approx([0, 0, (1 + e) / np.sqrt(6) * e, 0.5 * e])
    # idf: C is in 1 of 3 sessions: its score grows by 1 + log(3)
    idf = K.StanConfig(k=3, l1=1.0, l3=1.0, recency=0.0, idf=1.0, sample=10)
    s_idf = dense(K.knn_scores(K.SessionIndex.build(TRAIN, 4, idf), sessions([A, B]), idf))[0]
    assert s_idf[C] == pytest.approx(s[C] * (1 + np.log(3)))
    # sample=1: each item's posting list keeps its most recent session only
    # (A: [A, B]; B: [B, D]); [A]'s only neighbour is [A, B]
    cut = K.StanConfig(k=3, l1=1.0, l3=1.0, recency=0.0, idf=0.0, sample=1)
    s_cut = dense(K.knn_scores(K.SessionIndex.build(TRAIN, 4, cut), sessions([A]), cut))[0]
    assert s_cut == pytest.approx([0, e / np.sqrt(2), 0, 0])


def test_served_hybrid_scores_equal_the_library_scores(tmp_path):
    from include.serving.session import load_session_index
    from recsys.session import knn as K
    from recsys.session.publish import SESSION_INDEX_FILE, write_session_model

    table_cfg = M.SessionKNNConfig(rules_weight=0.5, window=2, decay=1.0, recency=1.0)
    cfg = K.StanConfig(k=2, l1=2.0, l3=3.0, recency=1.0, idf=0.5, mix=0.7, prior=0.2)
    model = K.SessionStan(cfg, table_cfg).fit(TRAIN, 4)
    items = pd.Index(["A", "B", "C", "D"])
    write_session_model(tmp_path, model.table, items, table_cfg, {}, index=model.index, hybrid=cfg)
    assert (tmp_path / SESSION_INDEX_FILE).exists()
    index = load_session_index(tmp_path)
    for seq in ([A, B, A], [B], [C, A]):
        rows, scores = index.score([items[i] for i in seq] + ["unknown"])
        served = dict(zip(index.ids[rows].tolist(), scores.tolist(), strict=True))
        lib = dense(model.score(sessions([*seq, -1])))[0]
        assert served == pytest.approx({items[j]: lib[j] for j in np.flatnonzero(lib)}, rel=1e-5)
    # the table alone (an older version's files) is still served as before
    write_session_model(tmp_path, model.table, items, table_cfg, {})
    assert not (tmp_path / SESSION_INDEX_FILE).exists()
    assert load_session_index(tmp_path).knn is None


def test_publish_session_files_only_when_the_clause_passed(tmp_path):
    from recsys.session.publish import SESSION_MODEL_FILE
    from recsys.session.training import (
        publish_session_files,
        save_session_model,
        train_session_model,
    )

    rows = []
    for v in range(300):  # visitors browse a -> b -> c; the last 100 arrive after T
        day = "2026-01-01" if v < 200 else "2026-01-20"
        for j, item in enumerate(("a", "b", "c")):
            rows.append((f"v{v}", item, "product_view", f"{day} 10:{v % 50:02d}:{j:02d}"))
    events = events_frame(rows)
    equal_is_enough = {"session_clauses": [{"factor": 1.0}]}
    result = train_session_model(events, split_at="2026-01-10", contract=equal_is_enough)
    # every test session reveals a, b: c is the target; both models rank it first
    assert result.evaluation.n_test_sessions == 100
    assert result.evaluation.results["cooccurrence"].hr == 1.0
    assert result.evaluation.results["session_knn"].hr == 1.0
    assert result.evaluation.results["session_stan"].hr == 1.0
    assert result.passed
    save_session_model(result, tmp_path / "model")
    assert publish_session_files(tmp_path / "model", tmp_path / "pub")
    assert (tmp_path / "pub" / SESSION_MODEL_FILE).exists()
    # the default clause wants 1.1x: 1.0 vs 1.0 fails, and nothing is published
    result = train_session_model(events, split_at="2026-01-10")
    assert result.clause["status"] == "fail" and result.clause["required"] == pytest.approx(1.1)
    save_session_model(result, tmp_path / "model2")
    assert not publish_session_files(tmp_path / "model2", tmp_path / "pub2")
    assert not (tmp_path / "pub2").exists()


def test_also_bought_backfills_co_viewed_before_embeddings(tmp_path):
    from pathlib import Path

    from recsys.data import IdMap
    from recsys.registry import SavedModel
    from recsys.scoring import also_bought
    from recsys.session.publish import read_neighbour_matrix, write_session_model

    ids = ["w", "x", "y", "z"]
    # co-bought: only w-x; embeddings: z is w's nearest, then y
    sim = sp.csr_matrix(np.array([[0, 0.9, 0, 0], [0.9, 0, 0, 0], [0] * 4, [0] * 4], np.float32))
    emb = np.array([[1, 0], [0, 1], [0.6, 0.8], [0.99, 0.1]], np.float32)
    n = len(ids)
    model = SavedModel(
        "v", Path(tmp_path), {}, "test", IdMap.from_values(["u"]), IdMap.from_values(ids),
        pd.DataFrame({"item_id": ids}), np.zeros((1, 2)), np.zeros(1), emb, np.zeros(n),
        sp.csr_matrix((1, n)), sim, None, 0.0, 0.0,
    )  # fmt: skip
    # the session table over its own vocabulary (y, w, v unknown to the model): w -> y 0.5,
    # w -> v 0.7 (dropped: v unknown), w -> x 0.2 (already co-bought)
    table = sp.csr_matrix(np.array([[0, 0.5, 0.7, 0.2], [0] * 4, [0] * 4, [0] * 4], np.float32))
    cfg = M.SessionKNNConfig()
    write_session_model(tmp_path, table, pd.Index(["w", "y", "v", "x"]), cfg)
    co_viewed = read_neighbour_matrix(tmp_path, model.items.ids)
    assert dense(co_viewed)[0].tolist() == pytest.approx([0, 0.2, 0.5, 0])
    lists = also_bought(model, k=3, co_viewed=co_viewed)
    w = lists[lists["key_id"] == "w"].sort_values("rank")
    # co-bought x first, then co-viewed y (capped by x's 0.9: 0.5), then the embedding's z
    assert w["item_id"].tolist() == ["x", "y", "z"]
    assert w["score"].tolist()[:2] == pytest.approx([0.9, 0.5])
    without = also_bought(model, k=3)
    assert without[without["key_id"] == "w"].sort_values("rank")["item_id"].tolist() == [
        "x",
        "z",
        "y",
    ]


def test_pos_orders_events_and_timestamp_times_sessions():
    frame = SD.check_session_frame(
        pd.DataFrame(
            {
                "session_id": ["late", "late", "early", "early", None],
                "item_id": ["b", "a", "c", "d", "x"],
                "pos": [1, 0, 0, 1, 0],
                "timestamp": ["2026-01-02T10:00:00Z"] * 2 + ["2026-01-01T10:00:00Z"] * 2 + [None],
            }
        )
    )
    assert len(frame) == 4  # the row without a session is dropped
    items = pd.Index(["a", "b", "c", "d"])
    s = SD.to_sessions(frame, items)
    # sessions in time order (early first), events in pos order
    assert items[s.items].tolist() == ["c", "d", "a", "b"]
    assert SD.time_split(frame, 0.5).tolist() == ["test", "test", "train", "train"]


def test_cli_without_test_sessions_says_so(tmp_path, capsys):
    f = tmp_path / "s.csv"
    write_csv(f, ["a,x,0,train", "a,y,1,train", "b,x,0,test"])  # the test session has 1 event
    assert recsys_main(["evaluate", str(f), "--protocol", "session-last-item"]) == 2
    assert "no test session of 2 or more events" in capsys.readouterr().err


def test_items_without_cooccurrence_get_embedding_neighbours(tmp_path):
    from include.serving.session import load_session_index
    from recsys.session.publish import with_embedding_neighbours, write_session_model

    table = sp.csr_matrix(np.array([[0, 0.5], [0.25, 0]], dtype=np.float32))
    items = pd.Index(["A", "B"])
    # N never was in a session; its embedding: cos(N, A) = 0.8, cos(N, B) = 0.6
    emb_ids = pd.Index(["A", "B", "N"])
    emb = np.array([[1, 0], [0, 1], [0.8, 0.6]], dtype=np.float32)
    m, ids = with_embedding_neighbours(table, items, emb_ids, emb, width=2)
    assert ids.tolist() == ["A", "B", "N"]
    # weights cosine * the table's smallest weight (0.25): after any co-occurrence evidence
    assert dense(m) == pytest.approx(np.array([[0, 0.5, 0], [0.25, 0, 0], [0.2, 0.15, 0]]))
    assert dense(with_embedding_neighbours(table, items, emb_ids, emb, width=1)[0])[2] == (
        pytest.approx([0.2, 0, 0])
    )
    cfg = M.SessionKNNConfig(decay=1.0)
    write_session_model(tmp_path, table, items, cfg, {}, embeddings=(emb_ids, emb))
    rows, scores = load_session_index(tmp_path).score(["N"])
    index = load_session_index(tmp_path)
    assert index.ids[rows].tolist() == ["A", "B"] and scores == pytest.approx([0.2, 0.15])


def test_user_model_item_embeddings_reads_a_saved_version(tmp_path):
    from recsys.session.training import user_model_item_embeddings

    assert user_model_item_embeddings(tmp_path) is None  # no user model saved: no backfill
    pd.DataFrame({"item_id": ["y", "x"], "item_index": [1, 0]}).to_parquet(
        tmp_path / "items.parquet"
    )
    np.save(tmp_path / "item_embeddings.npy", np.array([[1, 0], [0, 1]], dtype=np.float32))
    ids, emb = user_model_item_embeddings(tmp_path)
    assert ids.tolist() == ["x", "y"] and emb.tolist() == [[1, 0], [0, 1]]


def test_taste_table_by_hand_links_items_no_visitor_held_together():
    # visitors: v0 holds {A, B}, v1 holds {B, C}; visitor counts A 1, B 2, C 1, so
    # G = D^-1/2 X'X D^-1/2 = [[1, r, 0], [r, 1, r], [0, r, 1]] with r = 1/sqrt(2): eigenvalues
    # 2, 1, 0; the top one's vector (1, sqrt(2), 1) / 2, so the rank-1 G is 2 v v' =
    # [[1/2, r, 1/2], [r, 1, r], [1/2, r, 1/2]]: A and C (never held by one visitor) get 1/2
    x = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    r = 1 / np.sqrt(2)
    t1 = dense(M.taste_table(x, rank=1, width=5))
    assert t1 == pytest.approx(np.array([[0, r, 0.5], [r, 0, r], [0.5, r, 0]]), abs=1e-9)
    # full rank gives G itself (A-C: 0, dropped); width 1 keeps each row's best
    assert dense(M.taste_table(x, rank=3, width=5)) == pytest.approx(
        np.array([[0, r, 0], [r, 0, r], [0, r, 0]]), abs=1e-9
    )
    t_w1 = dense(M.taste_table(x, rank=1, width=1))
    assert t_w1 == pytest.approx(np.array([[0, r, 0], [r, 0, 0], [0, r, 0]]), abs=1e-9)


def test_visitors_pool_their_sessions_and_default_to_the_session():
    s = SD.Sessions(
        np.array([0, 2, 3, 4]), np.array([A, B, C, D_]), np.arange(3.0), np.array([0, 0, 1])
    )
    # sessions 0 and 1 are one visitor's: {A, B} + {C}
    assert dense(M.visitor_item_matrix(s, 4)).tolist() == [[1, 1, 1, 0], [0, 0, 0, 1]]
    assert s.take(np.array([2, 0])).visitor.tolist() == [1, 0]
    no_visitor = SD.Sessions(s.indptr, s.items, s.end_time)
    assert dense(M.visitor_item_matrix(no_visitor, 4)).shape == (3, 4)
    # a frame's user_id becomes the visitor codes; a missing one is the session's own
    frame = SD.check_session_frame(
        pd.DataFrame(
            {
                "session_id": ["s1", "s1", "s2", "s3"],
                "item_id": ["A", "B", "C", "D"],
                "pos": [0, 1, 0, 0],
                "user_id": ["u", "u", "u", None],
            }
        )
    )
    enc = SD.to_sessions(frame, pd.Index(["A", "B", "C", "D"]))
    assert enc.visitor[0] == enc.visitor[1] != enc.visitor[2]


def test_taste_part_is_added_on_the_tables_scale_by_hand():
    # sessions [A, B] (visitor 0) and [B, C] (visitor 1): the cosine table M has A-B = B-C =
    # 1 / sqrt(1 * 2); the rank-1 taste table T is the one of the test above; both tables'
    # median row maximum is 1/sqrt(2), so M + taste * T
    s = SD.Sessions(np.array([0, 2, 4]), np.array([A, B, B, C]), np.arange(2.0), np.array([0, 1]))
    cfg = M.SessionKNNConfig(
        rules_weight=0.0, decay=0.0, source_norm=0.5, recency=0.0, taste=0.5, taste_rank=1
    )
    table = dense(M.SessionKNN(cfg).fit(s, 3).table)
    r = 1 / np.sqrt(2)
    expected = np.array([[0, 1.5 * r, 0.25], [1.5 * r, 0, 1.5 * r], [0.25, 1.5 * r, 0]])
    assert table == pytest.approx(expected, rel=1e-6)
    # taste 0: the table is M alone
    plain = dense(
        M.SessionKNN(M.SessionKNNConfig(**{**cfg.__dict__, "taste": 0.0})).fit(s, 3).table
    )
    assert plain == pytest.approx(np.array([[0, r, 0], [r, 0, r], [0, r, 0]]), rel=1e-6)


def test_keep_top_per_row_keeps_the_largest_and_breaks_ties_by_column():
    from recsys.models.cooccurrence import keep_top_per_row

    m = sp.csr_matrix(np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [0.0, 0.2, 0.0, 0.0, 0.3]]))
    out = dense(keep_top_per_row(m, 2))
    # row 0: 0.9, then the first of the tied 0.5s (lowest column); row 1 is short: kept whole
    assert out.tolist() == [[0.5, 0.9, 0, 0, 0], [0, 0.2, 0, 0, 0.3]]
    assert dense(keep_top_per_row(m, 3))[0].tolist() == [0.5, 0.9, 0.5, 0, 0]
    # the same row with its entries out of column order (as a sparse product leaves them):
    # the same cut, sorted, and the input is left as it was
    data, cols = np.array([0.5, 0.1, 0.5, 0.9, 0.5]), np.array([3, 4, 0, 1, 2])
    shuffled = sp.csr_matrix((data, cols, np.array([0, 5])), shape=(1, 5))
    out = keep_top_per_row(shuffled, 2)
    assert out.indices.tolist() == [0, 1] and out.data.tolist() == [0.5, 0.9]
    assert shuffled.indices.tolist() == [3, 4, 0, 1, 2]
    assert dense(keep_top_per_row(shuffled, 3))[0].tolist() == [0.5, 0.9, 0.5, 0, 0]


def test_hybrid_tuning_scores_each_point_as_the_model_does():
    """tune_hybrid keeps each chunk's neighbourhood and table parts between its points: every
    point's figures equal those of the model built for that point alone."""
    from dataclasses import replace

    from recsys.session import knn as K
    from recsys.session.tuning import tune_hybrid

    rng = np.random.default_rng(7)
    n_items, seqs = 40, []
    for _ in range(600):  # sessions walking a few neighbouring items
        start = int(rng.integers(0, n_items))
        seqs.append([(start + int(s)) % n_items for s in rng.integers(0, 5, rng.integers(2, 7))])
    s = sessions(*seqs)
    train = SD.Sessions(s.indptr, s.items, s.end_time, np.arange(600) // 2)  # 2 per visitor
    fit, cases = SD.split_validation(train, 0.2)
    pop_key = P.popularity_key(M.item_counts(fit, n_items))
    table_config = M.SessionKNNConfig(two_hop=0.1, neighbours=10)
    base = K.StanConfig(k=20)
    _, points, _ = tune_hybrid(fit, cases, n_items, table_config, pop_key, base)
    assert len(points) >= 10  # the grid, the taste weights, the refinements
    parts = M.SessionKNNParts.build(fit, n_items, table_config.window, table_config.recency)
    index = K.SessionIndex.build(fit, n_items, base)
    for point in points:
        config = replace(
            base, **{n: point[n] for n in ("knn", "mix", "prior", "l1")}, k=int(point["k"])
        )
        tconfig = replace(table_config, taste=point["taste"])
        model = K.SessionStan.from_parts(index, parts.table(tconfig), config, tconfig)
        hr, mrr = P.hr_mrr(P.case_ranks(model, cases, pop_key))
        assert (point["hr@20"], point["mrr@20"]) == (hr, mrr), point
