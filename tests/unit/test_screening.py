"""Name screening: normalisation, Jaro-Winkler, token pairing, documents, and an exact prefilter."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import screening
from engine.screening import (
    NameScreener,
    WatchlistEntry,
    compare_names,
    document_digits,
    explain,
    fold_token,
    jaro_winkler,
    jaro_winkler_py,
    name_tokens,
    name_variants,
    normalise_name,
    position_weights,
    subset_bound,
    token_set_score,
    token_similarity,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "screening_names.json"

CPF = "52998224725"
CNPJ = "11222333000181"
ENTRIES = (
    WatchlistEntry("P1", "José Carlos Pereira Lima", document=CPF, list_name="PEP"),
    WatchlistEntry(
        "S1",
        "Mohammed Abdullah Al-Rashid",
        aliases=("Muhammad Abdallah al Rashid", "Abu Faisal"),
        list_name="OFAC",
    ),
    WatchlistEntry(
        "C1",
        "Tecnosul Informática e Serviços Ltda",
        document=CNPJ,
        list_name="CEIS",
        kind="company",
    ),
    WatchlistEntry("P2", "Antônio Carlos Pereira Lima", document="11144477735", list_name="PEP"),
    WatchlistEntry("P3", "Ivone Aparecida de Sá", list_name="PEP"),
)


@pytest.fixture(scope="module")
def screener() -> NameScreener:
    return NameScreener(ENTRIES, min_score=0.88)


# ---------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  JOSÉ   da  SILVA ", "jose da silva"),
        ("Comércio de Alimentos São José Ltda.", "comercio de alimentos sao jose"),
        ("XPTO S.A.", "xpto"),
        ("XPTO S/A", "xpto"),
        ("XPTO SA", "xpto"),
        ("XPTO Sociedade Anônima", "xpto"),
        ("Padaria Pão Quente ME", "padaria pao quente"),
        ("Rio Verde Agropecuária EIRELI - EPP", "rio verde agropecuaria"),
        ("Silva & Cia", "silva"),
        ("Orion Trading Co., Ltd.", "orion trading"),
        ("Global Shipping L.L.C.", "global shipping"),
        ("ACME Corp", "acme"),
        ("Acme Inc.", "acme"),
        ("Straße Øresund GmbH & Co. KG", "strasse oresund"),
        ("Transp. Rodrigues Ind. e Com.", "transportes rodrigues industria e comercio"),
        ("Paulo Magalhães Jr.", "paulo magalhaes junior"),
        ("Ana de Sá", "ana de sa"),  # the surname Sá, not S.A.
        ("O'Brien-Smith", "o brien smith"),
    ],
)
def test_normalise_name(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


def test_name_tokens_drop_particles_and_put_last_first_back_in_order() -> None:
    assert name_tokens("DA SILVA, João Carlos") == ("joao", "carlos", "silva")
    assert name_tokens("Maria dos Santos e Souza") == ("maria", "santos", "souza")
    assert name_tokens("ACME, INC.") == ("acme",)  # nothing after the comma: not a "LAST, First"
    assert name_tokens("De") == ("de",)  # only particles: kept
    assert name_tokens("") == ()


def test_ambiguous_sa_is_tried_both_ways() -> None:
    assert name_variants("Ivone Aparecida Sá") == (
        (("ivone", "aparecida"), "as written"),
        (("ivone", "aparecida", "sa"), "kept 'sa'"),
    )
    assert name_variants("Ana de Sá") == ((("ana", "sa"), "as written"),)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("souza", "sousa"),
        ("luiz", "luis"),
        ("thiago", "tiago"),
        ("rafael", "raphael"),
        ("matheus", "mateus"),
        ("katia", "catia"),
        ("aleksandr", "alexandr"),
        ("wellington", "welington"),
        ("yvone", "ivone"),
        ("helena", "elena"),
    ],
)
def test_spelling_variants_fold_to_the_same_form(a: str, b: str) -> None:
    assert fold_token(a) == fold_token(b)


def test_folding_keeps_portuguese_digraphs() -> None:
    assert fold_token("carvalho") == "carvalho"
    assert fold_token("magalhaes") == "magalhaes"
    assert fold_token("chaves") == "chaves"


def test_document_digits() -> None:
    assert document_digits("529.982.247-25") == CPF
    assert document_digits("11.222.333/0001-81") == CNPJ
    assert document_digits("n/a") is None
    assert document_digits(None) is None


# ---------------------------------------------------------------- Jaro-Winkler


@pytest.mark.parametrize("implementation", [jaro_winkler, jaro_winkler_py])
@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("MARTHA", "MARHTA", 0.961),
        ("DWAYNE", "DUANE", 0.840),
        ("DIXON", "DICKSONX", 0.813),
        ("JELLYFISH", "SMELLYFISH", 0.896),
        ("SILVA", "SILVA", 1.0),
        ("ABC", "XYZ", 0.0),
    ],
)
def test_jaro_winkler_known_pairs(
    implementation: Callable[[str, str], float], a: str, b: str, expected: float
) -> None:
    assert round(implementation(a, b), 3) == expected


def test_pure_python_jaro_winkler_agrees_with_the_library() -> None:
    rng = random.Random(11)
    for _ in range(2_000):
        a = "".join(rng.choices("abcdeilmnorsu", k=rng.randint(1, 10)))
        b = "".join(rng.choices("abcdeilmnorsu", k=rng.randint(1, 10)))
        assert jaro_winkler_py(a, b) == pytest.approx(jaro_winkler(a, b), abs=1e-12), (a, b)


def test_token_similarity_says_how() -> None:
    assert token_similarity("silva", "silva") == (1.0, "exact")
    assert token_similarity("j", "jose") == (0.9, "initial")
    assert token_similarity("x", "jose") == (0.0, "none")
    assert token_similarity("souza", "sousa") == (0.97, "folded")
    similarity, how = token_similarity("oliveira", "olivera")
    assert how == "jaro_winkler"
    assert similarity == pytest.approx(jaro_winkler("oliveira", "olivera"))


# ---------------------------------------------------------------- the score


def test_reordering_and_particles_do_not_matter() -> None:
    assert compare_names("SILVA, JOAO", "Joao da Silva").score == 1.0
    assert compare_names("FERREIRA RAIMUNDO NONATO", "Raimundo Nonato Ferreira").score == 1.0
    assert compare_names("Maria dos Santos", "MARIA SANTOS").score == 1.0


def test_legal_forms_do_not_matter() -> None:
    assert compare_names("XPTO Comércio LTDA", "XPTO COMERCIO ME").score == 1.0
    assert compare_names("Construtora Alvorada S.A.", "CONSTRUTORA ALVORADA S/A").score == 1.0


def test_a_missing_middle_name_costs_little_a_different_given_name_a_lot() -> None:
    listed = "Maria Aparecida dos Santos Oliveira"
    assert compare_names("Maria Aparecida Oliveira", listed).score == 0.9091  # 5 / 5.5
    assert compare_names("Maria Oliveira", listed).score == 0.8  # 4 / 5
    assert compare_names("Joana Aparecida dos Santos Oliveira", listed).score == 0.6667  # 4 / 6
    assert compare_names("Maria Aparecida dos Santos Pereira", listed).score == 0.6667


def test_a_typo_lowers_the_score_by_its_jaro_winkler() -> None:
    breakdown = compare_names("Jsoe Carlos Pereira Lima", "José Carlos Pereira Lima")
    # first token: weight 1 on each side, 0.925 similar; the other 5 weight units exact
    assert breakdown.score == round((0.925 * 2 + 4) / 6, 4)
    assert breakdown.pairs[0] == screening.TokenPair("jsoe", "jose", 0.925, "jaro_winkler")


def test_token_set_score_is_a_weighted_dice() -> None:
    assert position_weights(3) == (1.0, 0.5, 1.0)
    assert token_set_score(("joao", "silva"), ("joao", "carlos", "silva")) == 0.8889
    assert token_set_score(("joao",), ("pedro",)) == 0.0
    assert token_set_score((), ("pedro",)) == 0.0


def test_pairs_are_one_to_one() -> None:
    # "maria" cannot pair with both listed tokens
    assert token_set_score(("maria", "maria"), ("maria",)) == round(2 / 3, 4)


def test_subset_bound_is_never_below_the_real_score() -> None:
    rng = random.Random(5)
    pool = ["silva", "silvia", "santos", "souza", "sousa", "jose", "josef", "j", "maria", "mario"]
    for _ in range(3_000):
        query = tuple(rng.sample(pool, rng.randint(1, 5)))
        candidate = tuple(rng.sample(pool, rng.randint(1, 5)))
        b = explain(query, candidate)
        weights = position_weights(len(query))
        paired = [query.index(p.query_token) for p in b.pairs]
        bound = subset_bound(sum(weights[i] for i in paired), len(paired), sum(weights))
        assert b.token_set_score <= bound + 1e-4, (query, candidate)


# ---------------------------------------------------------------- the screener


def test_screen_finds_variants_best_first(screener: NameScreener) -> None:
    matches = screener.screen("LIMA, JOSE CARLOS PEREIRA")
    assert [m.entry_id for m in matches] == ["P1"]
    assert matches[0].score == 1.0
    assert matches[0].method == "token_set"
    assert matches[0].list_name == "PEP"


def test_results_are_sorted_and_limited() -> None:
    entries = [
        WatchlistEntry("A", "Luciana Mendes Carvalho"),
        WatchlistEntry("B", "Luciana Mendez Carvalho"),
        WatchlistEntry("C", "Luciana Carvalho"),
    ]
    screener = NameScreener(entries, min_score=0.85)
    matches = screener.screen("Luciana Mendes Carvalho")
    assert [m.entry_id for m in matches] == ["A", "B", "C"]
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert [m.entry_id for m in screener.screen("Luciana Mendes Carvalho", limit=2)] == ["A", "B"]
    assert screener.screen("Luciana Mendes Carvalho", limit=0) == []


def test_min_score_is_the_threshold() -> None:
    entries = [WatchlistEntry("A", "Maria Aparecida dos Santos Oliveira")]
    query = "Maria Aparecida Oliveira"  # 0.9091
    assert [m.score for m in NameScreener(entries, min_score=0.9091).screen(query)] == [0.9091]
    assert NameScreener(entries, min_score=0.9092).screen(query) == []
    with pytest.raises(ValueError, match="min_score"):
        NameScreener(entries, min_score=0.0)


def test_a_different_given_name_is_not_a_match(screener: NameScreener) -> None:
    assert screener.screen("Pedro Carlos Pereira Lima") == []


def test_an_alias_can_match_and_is_named(screener: NameScreener) -> None:
    [match] = screener.screen("abu faisal")
    assert (match.entry_id, match.matched_name, match.score) == ("S1", "Abu Faisal", 1.0)
    [match] = screener.screen("Muhamad Abdalah Al Rashid")
    assert match.matched_name == "Muhammad Abdallah al Rashid"


def test_a_document_short_circuits_to_one(screener: NameScreener) -> None:
    [match] = screener.screen("Fulano de Tal", document="529.982.247-25")
    assert (match.entry_id, match.score, match.method) == ("P1", 1.0, "document")
    assert match.breakdown.method == "document"
    assert not match.breakdown.document_conflict


def test_a_name_match_with_its_document_is_a_document_match(screener: NameScreener) -> None:
    [match] = screener.screen("Jose Carlos Pereira Lima", document=CPF)
    assert (match.score, match.method) == (1.0, "document")
    assert match.matched_name == "José Carlos Pereira Lima"
    assert match.breakdown.token_set_score == 1.0


def test_another_branch_of_a_listed_company_matches_by_cnpj_root(screener: NameScreener) -> None:
    [match] = screener.screen("Loja Centro", document="11.222.333/0002-62")
    assert (match.entry_id, match.score, match.method) == ("C1", 1.0, "document_root")


def test_a_homonym_with_another_document_is_flagged_not_dropped(screener: NameScreener) -> None:
    [match] = screener.screen("José Carlos Pereira Lima", document="98765432100")
    assert (match.entry_id, match.method, match.score) == ("P1", "token_set", 1.0)
    assert match.breakdown.document_conflict


def test_the_breakdown_says_why(screener: NameScreener) -> None:
    [match] = screener.screen("Lima, José C. Pereyra")
    b = match.breakdown
    assert b.normalised_query == "lima jose c pereyra"
    assert b.normalised_candidate == "jose carlos pereira lima"
    assert b.query_tokens == ("jose", "c", "pereyra", "lima")
    assert b.method == "token_set"
    assert b.query_variant == "as written"
    hows = {(p.query_token, p.candidate_token): p.how for p in b.pairs}
    assert hows == {
        ("jose", "jose"): "exact",
        ("c", "carlos"): "initial",
        ("pereyra", "pereira"): "folded",
        ("lima", "lima"): "exact",
    }
    assert b.unmatched_query == () and b.unmatched_candidate == ()
    assert b.score == match.score < 1.0
    assert 0.0 < b.sorted_jw_score < 1.0


def test_the_breakdown_lists_unmatched_tokens(screener: NameScreener) -> None:
    [match] = screener.screen("Tecnosul Servicos")
    assert match.score == 0.8889  # (2 + 2) / (2 + 2.5): the middle word is missing
    assert match.breakdown.unmatched_candidate == ("informatica",)
    assert match.breakdown.unmatched_query == ()


def test_split_and_merged_tokens_are_tried(screener: NameScreener) -> None:
    [match] = screener.screen("Tecno Sul Informatica e Servicos")
    assert (match.entry_id, match.score) == ("C1", 1.0)
    assert match.breakdown.query_variant == "merged 'tecno sul'"
    [match] = screener.screen("Mohammed Abdullah Alrashid")
    assert match.entry_id == "S1"
    assert match.breakdown.query_variant == "split 'alrashid'"


def test_sa_as_a_surname_still_matches(screener: NameScreener) -> None:
    [match] = screener.screen("Ivone Aparecida Sá")
    assert (match.entry_id, match.score) == ("P3", 1.0)


def test_nothing_to_screen() -> None:
    screener = NameScreener(ENTRIES)
    assert screener.screen("") == []
    assert screener.screen("Ltda") == []
    assert len(screener) == len(ENTRIES)


def _random_names(rng: random.Random, count: int) -> list[str]:
    syllables = ["ma", "ri", "a", "jo", "se", "sil", "va", "san", "tos", "li", "na", "ro", "sa"]
    words = ["".join(rng.choices(syllables, k=rng.randint(1, 3))) for _ in range(60)]
    return [" ".join(rng.choices(words, k=rng.randint(1, 4))) for _ in range(count)]


def _mangle(rng: random.Random, name: str) -> str:
    tokens = name.split()
    rng.shuffle(tokens)
    if len(tokens) > 2 and rng.random() < 0.5:
        tokens.pop(rng.randrange(len(tokens)))
    if rng.random() < 0.5:
        i = rng.randrange(len(tokens))
        tokens[i] = (
            tokens[i][0] if rng.random() < 0.3 else tokens[i] + rng.choice(string.ascii_lowercase)
        )
    return " ".join(tokens)


@pytest.mark.parametrize("min_score", [0.75, 0.88, 0.95])
def test_the_prefilter_loses_nothing(min_score: float) -> None:
    rng = random.Random(int(min_score * 100))
    names = _random_names(rng, 400)
    entries = [
        WatchlistEntry(f"E{i}", name, aliases=(_mangle(rng, name),)) for i, name in enumerate(names)
    ]
    fast = NameScreener(entries, min_score=min_score)
    every = NameScreener(entries, min_score=min_score, prefilter=False)
    compared = 0
    for name in rng.sample(names, 60):
        query = _mangle(rng, name)
        got = {(m.entry_id, m.score) for m in fast.screen(query, limit=1_000)}
        assert got == {(m.entry_id, m.score) for m in every.screen(query, limit=1_000)}, query
        compared += len(got)
    assert compared > 60  # the queries did match something


def test_a_small_token_cache_still_gives_the_same_answers() -> None:
    tiny = NameScreener(ENTRIES, min_score=0.88, cache_size=1)
    roomy = NameScreener(ENTRIES, min_score=0.88)
    for query in ("Jose Carlos Pereira Lima", "Abu Faisal", "Tecno Sul Informatica", "Ivone Sá"):
        assert tiny.screen(query) == roomy.screen(query)


# ---------------------------------------------------------------- the labelled set


def _labelled() -> tuple[list[WatchlistEntry], list[dict[str, str | None]]]:
    raw = json.loads(DATA.read_text(encoding="utf-8"))
    entries = [
        WatchlistEntry(
            e["entry_id"], e["name"], tuple(e["aliases"]), e["document"], e["list_name"], e["kind"]
        )
        for e in raw["watchlist"]
    ]
    return entries, raw["queries"]


def test_the_labelled_set_is_consistent() -> None:
    entries, queries = _labelled()
    ids = {e.entry_id for e in entries}
    assert len(ids) == len(entries)
    positives = [q for q in queries if q["expected"] is not None]
    negatives = [q for q in queries if q["expected"] is None]
    assert len(queries) >= 150 and len(positives) >= 100 and len(negatives) >= 50
    assert {q["expected"] for q in positives} <= ids
    assert {q["target"] for q in negatives} - {None} <= ids


def test_quality_on_the_labelled_entries_alone() -> None:
    """A regression guard: the labelled queries against the labelled entries only (the bench
    adds 10k filler entries and reports the real figures)."""
    entries, queries = _labelled()
    screener = NameScreener(entries)
    true_positives = false_positives = 0
    for q in queries:
        found = {m.entry_id for m in screener.screen(str(q["query"]), q["document"], limit=50)}
        true_positives += q["expected"] in found
        false_positives += len(found - {q["expected"]})
    positives = sum(q["expected"] is not None for q in queries)
    assert true_positives / positives >= 0.95
    assert true_positives / (true_positives + false_positives) >= 0.85
