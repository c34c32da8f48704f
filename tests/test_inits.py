"""The initialization experiment's comparison on simulated summaries."""
import numpy as np

from gmmdiff.analysis.inits import compare_inits, format_inits


def _summary(shift, rng, n_seeds=5, fail=()):
    configs = []
    for K in (2, 3):
        for seed in range(n_seeds):
            base = 0.8 + 0.03 * rng.standard_normal()
            for init, value in (("pmem", base), ("prior", base + shift + 0.01 * rng.standard_normal())):
                status = "outside sizes" if (init, K, seed) in fail else "ok"
                configs.append({"N": 20, "d": 10, "K": K, "data_var": 1.0, "seed": seed, "init": init,
                                "status": status, "M_pt_over_N": value if status == "ok" else None})
    return {"configs": configs}


def test_a_known_shift_is_found_and_no_shift_is_not():
    rng = np.random.default_rng(0)
    moved = compare_inits(_summary(0.2, rng))
    (pair,) = moved["pairs"]
    assert pair["reference"] == "pmem" and pair["other"] == "prior" and pair["pairs"] == 10
    assert pair["interval"][0] < 0.2 < pair["interval"][1]
    assert pair["verdict"].startswith("prior moves the transition: +0.2")
    same = compare_inits(_summary(0.0, rng))["pairs"][0]
    assert same["verdict"].startswith("no difference detected") and same["interval"][0] < 0 < same["interval"][1]
    # pairing removes the between-seed scatter (0.03) that the per-init means carry
    assert same["sd"] < 0.02 < moved["per_init"]["pmem"]["sd"]


def test_pairs_whose_fit_failed_are_left_out_and_counted():
    rng = np.random.default_rng(1)
    out = compare_inits(_summary(0.1, rng, fail={("prior", 2, 0), ("prior", 3, 4)}))
    pair = out["pairs"][0]
    assert pair["pairs"] == 8 and len(pair["left_out"]) == 2
    assert pair["left_out"][0]["prior"] == "outside sizes"
    assert out["per_init"]["prior"]["n"] == 8 and out["per_init"]["prior"]["statuses"] == ["ok", "outside sizes"]
    text = format_inits(out)
    assert "8 pairs, 2 left out" in text and "prior - pmem" in text
    none = compare_inits({"configs": [c for c in _summary(0.1, rng)["configs"] if c["init"] == "pmem"]
                          + [{"N": 20, "d": 10, "K": 2, "seed": 0, "init": "prior", "status": "no rise"}]})
    assert none["pairs"][0]["verdict"] == "too few pairs measured under both starts"


def test_the_shipped_init_comparison_follows_from_the_shipped_summary():
    """assets/init_sweep (gmmdiff-sweep --preset init, then --summary): inits.json is
    compare_inits() of summary.json; the sweep pairs pmem and prior starts over 2
    settings x 5 seeds with sizes up to 2N."""
    import json
    import os

    from gmmdiff.analysis.fit_files import ASSETS
    here = os.path.join(ASSETS, "init_sweep")
    summary = json.load(open(os.path.join(here, "summary.json")))
    ident = summary["identity"]
    assert ident["inits"] == ["pmem", "prior"] and len(ident["seeds"]) >= 4
    assert max(ident["size_ratios"]) == 2.0
    again = json.loads(json.dumps(compare_inits(summary)))
    shipped = json.load(open(os.path.join(here, "inits.json")))
    assert again["pairs"][0]["verdict"] == shipped["pairs"][0]["verdict"]
    np.testing.assert_allclose(again["pairs"][0]["differences"], shipped["pairs"][0]["differences"],
                               rtol=1e-9)
    np.testing.assert_allclose(again["pairs"][0]["interval"], shipped["pairs"][0]["interval"], rtol=1e-9)
