"""Write the public samples of ``../shared/data/real/`` as interactions CSVs for the CLI.

``python -m recsys evaluate FILE --protocol leave-last-out`` reads ``user_id, item_id`` and an
order column (``timestamp`` or ``seq_pos``), optionally ``event_type``. This script converts
the samples with enough returning users into that shape (files go to a folder outside the
repository: the licences keep the data in ``../shared``)::

    python bench/real_interactions.py /tmp/trasos-real
    for f in /tmp/trasos-real/*.csv.gz; do
        .venv/bin/python -m recsys evaluate "$f" --protocol leave-last-out | tail -1
    done

Amazon Beauty (5-core) is already in that shape and is used as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
if not REAL.exists():  # a worktree under /work/wt/<name>: ../../shared
    REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"

TAOBAO_EVENTS = {"pv": "product_view", "fav": "add_to_wishlist", "cart": "add_to_cart",
                 "buy": "purchase"}  # fmt: skip
REES46_EVENTS = {"view": "product_view", "cart": "add_to_cart", "purchase": "purchase"}


def amazon_grocery() -> pd.DataFrame:
    f = pd.read_csv(REAL / "amazon_grocery_rechorus" / "train.tsv.gz", sep="\t")
    return f.rename(columns={"time": "timestamp"})[["user_id", "item_id", "timestamp"]]


def taobao() -> pd.DataFrame:
    f = pd.read_csv(
        REAL / "taobao_userbehavior_sample" / "UserBehavior_subset.csv.gz",
        header=None,
        names=["user_id", "item_id", "category_id", "behavior", "timestamp"],
    )
    f["event_type"] = f["behavior"].map(TAOBAO_EVENTS)
    return f[["user_id", "item_id", "event_type", "timestamp"]]


def rees46() -> pd.DataFrame:
    f = pd.read_csv(REAL / "rees46_multicategory_sample" / "2019-Oct_head.csv.gz")
    return pd.DataFrame(
        {
            "user_id": f["user_id"],
            "item_id": f["product_id"],
            "event_type": f["event_type"].map(REES46_EVENTS),
            "timestamp": f["event_time"],
        }
    )


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for name, build in (("amazon_grocery", amazon_grocery), ("taobao", taobao),
                        ("rees46", rees46)):  # fmt: skip
        frame = build()
        path = out / f"{name}.csv.gz"
        frame.to_csv(path, index=False)
        print(f"{path}: {len(frame):,} rows, {frame['user_id'].nunique():,} users")
    print(f"{REAL / 'amazon_beauty_5core' / 'interactions.csv.gz'}: used as it is")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/trasos-real")))
