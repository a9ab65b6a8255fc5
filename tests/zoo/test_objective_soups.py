"""Objective Soups recipe: objectives, bad input, the shared direction, head optimizers, penalties, resume."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from bilevel.moo import LayerSelection
from tests.bilevel._asserts import BadInput, assert_rejects
from zoo.data import CharTokenizer
from zoo.models.translation import TranslationDecoder, WordVocab
from zoo.recipes.objective_soups import (
    SoupsConfig,
    SoupsData,
    SoupsModel,
    SoupsModelConfig,
    build_recipe,
    collate_soup,
    evaluate_soups,
    resolve_levels,
    soups_trainer,
)

LANGS = ("de", "en", "es", "fr", "it")
TINY = SoupsModelConfig(
    d_model=8,
    num_layers=1,
    num_heads=2,
    conv_kernel=3,
    stack=2,
    decoder_heads=2,
    cpc_steps=2,
    cpc_context=12,
    cpc_future=6,
)


def _item(g: torch.Generator, lang: str, vocab: WordVocab, translate: bool) -> dict:
    T = int(torch.randint(30, 40, (1,), generator=g))
    words = ["one", "two", "three", "cat", "dog"]
    k = int(torch.randint(1, 4, (1,), generator=g))
    tr = " ".join(words[int(i)] for i in torch.randint(0, 5, (k,), generator=g))
    it = {
        "id": f"{lang}-{T}",
        "feats": torch.randn(T, 6, generator=g),
        "tokens": torch.randint(1, 9, (4,), generator=g),
        "text": "abc",
        "language": lang,
        "domain": "",
        "split": "labelled",
        "duration": 0.3,
        "translation": tr if translate else "",
    }
    if translate:
        it["trans"] = torch.tensor(vocab.encode(tr))
    return it


def make_data(langs=LANGS, n: int = 6, seed: int = 0, untranslated: tuple[str, ...] = ()) -> SoupsData:
    g = torch.Generator().manual_seed(seed)
    vocab = WordVocab(["cat", "dog", "one", "three", "two"])
    tr = tuple(x for x in langs if x != "en")

    def part(m):
        return {x: [_item(g, x, vocab, x in tr and x not in untranslated) for _ in range(m)] for x in langs}

    unl = [_item(g, "en", vocab, False) for _ in range(n)]
    tok = CharTokenizer(list("abcdefgh"))
    return SoupsData(part(n), unl, part(2), part(2), tr, tok, vocab, 6)


CFG = SoupsConfig(steps=4, steps_per_epoch=2, batch_size=2, lr_encoder=1e-2, lr_heads=1e-2)


def test_objectives_of_a_batch():
    data = make_data()
    tr = soups_trainer(data, CFG, TINY)
    model = tr.state.model
    assert len(model.objectives) == 2 * len(LANGS) == 10 >= 9
    losses = model.objective_losses(tr.state.data.batch(0)["first"])
    assert list(losses) == model.objectives
    assert all(v.dim() == 0 and bool(torch.isfinite(v)) and v.requires_grad for v in losses.values())
    row = tr.step()
    w = {n: row[f"w_{n}"] for n in model.objectives}
    assert len(w) == 10 and min(w.values()) >= 0.0
    assert sum(w[f"asr_{x}"] for x in LANGS) == pytest.approx(1.0, abs=1e-6)  # the top level: a simplex point


def test_resolve_levels_and_user_levels():
    names = ["asr_en", "asr_fr", "st_fr", "ssl"]
    assert resolve_levels([["st_*"], ["asr_*"], ["ssl"]], names) == [["st_fr"], ["asr_en", "asr_fr"], ["ssl"]]
    rec = build_recipe(replace(CFG, levels="asr_en|asr_fr,st_*|ssl"), names)
    assert rec.levels == [["asr_en"], ["asr_fr", "st_fr"], ["ssl"]]
    assert rec.per == "epoch"


def _missing_language():
    tr = soups_trainer(make_data(), CFG, TINY)
    draw = tr.state.data.batch(0)["first"]
    del draw["fr"]
    tr.state.model.objective_losses(draw)


CASES = [
    BadInput(
        "empty level",
        lambda: resolve_levels([["asr_*"], ["mt_*"]], ["asr_en", "ssl"]),
        ValueError,
        r"levels\[1\].*matches no objective",
    ),
    BadInput(
        "objective in no level",
        lambda: resolve_levels([["asr_*"]], ["asr_en", "ssl"]),
        ValueError,
        "ssl.*no level",
    ),
    BadInput(
        "objective in two levels",
        lambda: resolve_levels([["*"], ["ssl"]], ["asr_en", "ssl"]),
        ValueError,
        "two levels|levels\\[0\\] and levels\\[1\\]",
    ),
    BadInput(
        "trainer: empty level",
        lambda: soups_trainer(make_data(), replace(CFG, levels="asr_*|mt_*|ssl"), TINY),
        ValueError,
        "matches no objective",
    ),
    BadInput("objective missing from the batch", _missing_language, ValueError, "language 'fr'"),
    BadInput(
        "language without translation data",
        lambda: soups_trainer(make_data(untranslated=("es",)), CFG, TINY),
        ValueError,
        "st_es.*translation",
    ),
    BadInput(
        "translate a language not recognised",
        lambda: SoupsModel(6, 9, 8, ["en"], ["fr"], TINY),
        ValueError,
        "translate",
    ),
    BadInput("unknown method", lambda: SoupsConfig(method="soup"), ValueError, "method"),
    BadInput("unknown solver", lambda: SoupsConfig(solver="adam"), ValueError, "solver"),
    BadInput("zero weight", lambda: SoupsConfig(weights=(1.0, 0.0, 1.0)), ValueError, r"weights\[1\]"),
    BadInput("bad apply_to", lambda: SoupsConfig(apply_to="some"), ValueError, "apply_to"),
    BadInput("empty vocab word", lambda: WordVocab(["a", ""]), ValueError, "words"),
    BadInput("decoder heads", lambda: TranslationDecoder(10, 8, heads=3), ValueError, "heads"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_rejects_bad_input(case):
    assert_rejects(case)


def test_head_optimizers_never_move_the_encoder():
    data = make_data()
    tr = soups_trainer(data, CFG, TINY)
    st, model = tr.state, tr.state.model
    shared = {id(p) for p in model.shared_parameters()}
    for name, opt in st.optimizers.items():
        ids = {id(p) for g in opt.param_groups for p in g["params"]}
        assert (ids <= shared) if name == "encoder" else not (ids & shared), name
    for g in st.optimizers["encoder"].param_groups:
        g["lr"] = 0.0  # the encoder's own optimizer does not move it, so nothing else may
    enc0 = [p.detach().clone() for p in model.shared_parameters()]
    heads0 = [p.detach().clone() for p in model.heads()["st_fr"].parameters()]
    for _ in range(3):
        tr.step()
    assert all(torch.equal(a, p) for a, p in zip(enc0, model.shared_parameters()))
    assert not all(torch.equal(a, p) for a, p in zip(heads0, model.heads()["st_fr"].parameters()))


@pytest.mark.parametrize("method", ["bilevel_split", "flat"])
def test_shared_direction_matches_hand_computation(method):
    """The encoder's .grad at its optimizer step is Σ_l η_l Σ_i w_i ḡ_i of per-objective gradients computed by
    hand, and each head's .grad is its own loss's gradient (nothing zeroed after writing)."""
    data = make_data()
    tr = soups_trainer(data, replace(CFG, method=method), TINY)
    tr.step()  # MoDo's λ and the penalty counter leave their initial values
    st, model = tr.state, tr.state.model
    ref_model = copy.deepcopy(model)  # same weights and CPC window generator
    recipe = copy.deepcopy(tr.step_fn.controller.recipe)
    batch = st.data.batch(st.step)
    st.data.load_state_dict(copy.deepcopy(st.data.state_dict()))
    shared = ref_model.shared_parameters()
    names = ref_model.objectives
    L1 = ref_model.objective_losses(batch["first"])
    L2 = ref_model.objective_losses(batch["second"])
    G1 = torch.stack(
        [
            torch.cat(
                [
                    g.flatten()
                    for g in torch.autograd.grad(
                        L1[n], shared, retain_graph=True, allow_unused=True, materialize_grads=True
                    )
                ]
            )
            for n in names
        ]
    )
    G2 = torch.stack(
        [
            torch.cat(
                [
                    g.flatten()
                    for g in torch.autograd.grad(
                        L2[n], shared, retain_graph=True, allow_unused=True, materialize_grads=True
                    )
                ]
            )
            for n in names
        ]
    )
    Gm = 0.5 * (G1 + G2)
    w = recipe.weights_from_gramian(Gm @ Gm.T, G1 @ G2.T)
    d = w.to(Gm) @ Gm
    head = ref_model.heads()["asr_de"]
    hg = torch.autograd.grad(0.5 * (L1["asr_de"] + L2["asr_de"]), list(head.parameters()))

    seen = {}
    enc_opt = st.optimizers["encoder"]
    orig = enc_opt.step

    def spy(*a, **k):
        seen["d"] = torch.cat([p.grad.flatten() for p in model.shared_parameters()])
        seen["h"] = [p.grad.clone() for p in model.heads()["asr_de"].parameters()]
        return orig(*a, **k)

    enc_opt.step = spy  # type: ignore[method-assign]
    tr.step_fn(st, batch)
    assert float(d.norm()) > 0
    torch.testing.assert_close(seen["d"], d, rtol=1e-4, atol=1e-7)
    for a, b in zip(seen["h"], hg):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-7)


def test_penalties_grow_per_epoch_not_per_batch():
    data = make_data()
    cfg = replace(
        CFG,
        method="multilevel_asr_first",
        steps=7,
        steps_per_epoch=3,
        penalty_start=0.2,
        penalty_max=1.0,
        penalty_epochs=4,
    )
    tr = soups_trainer(data, cfg, TINY)
    rows = tr.run()
    ramp = cfg.penalty()
    for k, row in enumerate(rows):
        e = k // 3  # the epoch of step k
        assert row["w_ssl"] == pytest.approx(ramp(e) ** 2, rel=1e-6)  # SSL weight η1·η2, one objective
    assert rows[0]["w_ssl"] == rows[2]["w_ssl"] < rows[3]["w_ssl"]


def test_weighted_sum_heads_get_their_own_gradient():
    data = make_data()
    tr = soups_trainer(data, replace(CFG, method="weighted_sum", weights=(2.0, 0.5, 0.25)), TINY)
    row = tr.step()
    assert row["w_asr_en"] == 2.0 and row["w_st_fr"] == 0.5 and row["w_ssl"] == 0.25


@pytest.mark.parametrize(
    "sel",
    [
        dict(selection="threshold", threshold=0.0),
        dict(selection="topk", top_k=3, apply_to="selected", layer_groups="module"),
    ],
)
def test_layer_selection_runs_in_both_modes(sel):
    data = make_data()
    tr = soups_trainer(data, replace(CFG, rescore_every=2, **sel), TINY)
    rows = tr.run()
    assert [r["scored"] for r in rows] == [True, False, True, False]
    s = tr.step_fn.controller.selection
    assert isinstance(s, LayerSelection) and s.scores is not None
    if sel["selection"] == "topk":
        assert all(r["selected"] == 3 for r in rows)


def test_resume_round_trip_is_exact(tmp_path):
    data = make_data()
    cfg = replace(CFG, steps=4, steps_per_epoch=1, selection="topk", top_k=4, rescore_every=2)
    full = soups_trainer(data, cfg, TINY)
    full.run()
    first = soups_trainer(data, replace(cfg, steps=2), TINY, run_dir=tmp_path)
    first.run()
    second = soups_trainer(data, cfg, TINY, run_dir=tmp_path)
    second.meta = first.meta  # the step budget differs; the rest of the run is the same
    second.load()
    second.run()
    for (n, a), b in zip(full.state.model.state_dict().items(), second.state.model.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b), n
    assert (
        full.step_fn.controller.recipe.state_dict()["counter"]
        == second.step_fn.controller.recipe.state_dict()["counter"]
        == 4
    )
    la = full.step_fn.controller.recipe.aggregators[0].lam
    lb = second.step_fn.controller.recipe.aggregators[0].lam
    assert torch.equal(la, lb)


def test_evaluate_and_collate():
    data = make_data()
    tr = soups_trainer(data, CFG, TINY)
    ev = evaluate_soups(tr.state.model, data, "test")
    assert set(ev["wer"]) == set(LANGS) and set(ev["bleu"]) == set(data.translate)
    assert 0.0 <= ev["avg_bleu"] <= 100.0 and ev["avg_wer"] >= 0.0
    b = collate_soup(data.train["fr"][:3])
    assert b["trans"].shape[0] == 3 and b["trans_lens"].tolist() == [
        it["trans"].numel() for it in data.train["fr"][:3]
    ]


def test_translation_decoder_loss_is_teacher_forced_cross_entropy():
    torch.manual_seed(0)
    dec = TranslationDecoder(8, 7, layers=1, heads=2)
    mem, lens = torch.randn(2, 5, 8), torch.tensor([5, 3])
    y, ylens = torch.tensor([[3, 4], [5, 0]]), torch.tensor([2, 1])
    logits = dec(mem, lens, y)
    gold = [[3, 4, 1], [5, 1]]  # EOS (1) after the words
    lp = logits.log_softmax(-1)
    ref = (
        -(sum(lp[0, u, t] for u, t in enumerate(gold[0])) + sum(lp[1, u, t] for u, t in enumerate(gold[1])))
        / 5
    )
    torch.testing.assert_close(dec.loss(mem, lens, y, ylens), ref, rtol=1e-5, atol=1e-6)
    # causality: changing a later target does not change earlier logits
    y2 = y.clone()
    y2[0, 1] = 6
    torch.testing.assert_close(dec(mem, lens, y2)[0, :2], logits[0, :2])


@pytest.mark.slow
def test_experiment_writes_tables_and_figures(tmp_path):
    from zoo.recipes.objective_soups.cli import SoupsRun, parser, run_experiment, write_report

    run = SoupsRun(
        methods=("flat", "weighted_sum"),
        steps=2,
        steps_per_epoch=1,
        batch_size=2,
        d_model=8,
        num_layers=1,
        conflict_batch=2,
        out=str(tmp_path),
    )
    results = run_experiment(run, make_data(), dev=False)
    write_report(results, run, tmp_path)
    for f in (
        "results.json",
        "table.md",
        "wer.png",
        "bleu.png",
        "conflict.png",
        "top_conflicts.png",
        "report.md",
    ):
        assert (tmp_path / f).is_file(), f
    table = (tmp_path / "table.md").read_text()
    assert "| flat |" in table and "| weighted_sum |" in table and "BLEU fr" in table
    assert set(results["conflict"]["init"]) == {"1", "2", "5"}
    assert parser("standard").parse_args([]).steps == 400


@pytest.mark.parametrize("solver", ["mgda", "cagrad"])
def test_other_solvers_give_simplex_weights_per_level(solver):
    tr = soups_trainer(make_data(), replace(CFG, solver=solver, method="bilevel"), TINY)
    row = tr.step()
    names = tr.state.model.objectives
    top = sum(row[f"w_{n}"] for n in names if n != "ssl")
    if solver == "mgda":
        assert top == pytest.approx(1.0, abs=1e-5)  # MGDA's weights lie on the simplex
    else:  # CAGrad: d = g0 + φ g_w / ||g_w||, non-negative weights of a larger total
        assert top > 0 and min(row[f"w_{n}"] for n in names) >= 0
    assert row["w_ssl"] == pytest.approx(CFG.penalty()(0), rel=1e-6)  # the lower level: the penalty
