"""Sanctions and PEP name screening: fuzzy, explainable, and fast against a large list.

Why it works this way:

* Names are compared token by token, not as one string. Brazilian names drop middle names and
  particles ("Maria Aparecida dos Santos" is also "Maria Santos"), lists write "SILVA, Joao"
  and companies swap "LTDA" for "ME". Each query token is paired with its most similar list
  token (Jaro-Winkler, one-to-one, most similar first), and the score is a weighted Dice
  coefficient of the pairs: first and last tokens weigh 1, middle ones 0.5, so a missing middle
  name costs little and a different given name or final surname costs a lot (the common
  homonym case: "Antonio Pereira Lima" is not "Jose Pereira Lima").
* Jaro-Winkler of the sorted token strings is shown in the breakdown but does not decide: it
  gives "Ana Maria Silva" / "Ana Maria Souza" 0.92 (pairing: 0.6), and on the labelled set
  (bench/screening.py) it raises far more false alerts at every threshold, so taking the max
  of both would too. Names split or glued differently
  ("Tecno Sul" / "Tecnosul", "Al Rashid" / "Alrashid") are handled instead by also screening
  the query with two tokens merged, or one split, where the result is a listed token.
* Spelling and transliteration variants (Souza/Sousa, Thiago/Tiago, Aleksandr/Alexander) are
  also compared on a phonetic folding of each token (:func:`fold_token`), at a 3% discount, so
  the exact spelling still ranks first.
* A document (CPF/CNPJ) equal to the entry's short-circuits to 1.0, and so does a CNPJ with
  the same 8-digit root (another branch of the same company). Different documents on both
  sides are flagged (``document_conflict``) but do not lower the score: dismissing a homonym
  with another CPF is the analyst's call.
* Speed without losing matches: every list token is kept once in a vocabulary. A query token is
  compared with the whole vocabulary in one C call (rapidfuzz; results cached per token),
  which gives its exact set of neighbours (similarity >= the pair floor). A list name can reach
  ``min_score`` only if enough query tokens found a neighbour in it, and which subsets of query
  tokens are enough follows from the score formula (:func:`subset_bound`). Only names hit by
  such a subset are scored, so the prefilter is exact: it never drops a name that scoring
  every listed name would have kept. Without rapidfuzz a pure-Python Jaro-Winkler is used
  (same results, much slower).

>>> entry = WatchlistEntry("E1", "João Carlos da Silva", list_name="PEP", document="12345678909")
>>> screener = NameScreener([entry], min_score=0.88)
>>> [(m.entry_id, m.score, m.method) for m in screener.screen("SILVA, Joao Carlos")]
[('E1', 1.0, 'token_set')]
>>> [(m.score, m.method) for m in screener.screen("J. Silva", document="123.456.789-09")]
[(1.0, 'document')]
>>> screener.screen("Antonio Carlos da Silva")
[]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import combinations

try:
    import numpy as np
    from rapidfuzz import process as rf_process
    from rapidfuzz.distance import JaroWinkler as RfJaroWinkler

    HAVE_RAPIDFUZZ = True
except ImportError:  # pragma: no cover - only where rapidfuzz (or numpy) is not installed
    HAVE_RAPIDFUZZ = False

PAIR_FLOOR = 0.85  # token pairs less similar than this are not paired at all
INITIAL_SIMILARITY = 0.90  # "J" against "Joao"
FOLD_DISCOUNT = 0.97  # similarity of folded forms counts a little less than spelled similarity
EDGE_WEIGHT = 1.0  # first and last token
MIDDLE_WEIGHT = 0.5  # middle names, maternal surnames: often left out
DEFAULT_MIN_SCORE = 0.88
MAX_SUBSET_TOKENS = 12  # longer queries score every name hit by any of their tokens

PARTICLES = frozenset(
    {"d", "da", "das", "de", "del", "della", "di", "do", "dos", "du", "e", "van", "von", "y"}
)
LEGAL_FORMS = frozenset(
    {
        # Brazil
        "ltda", "limitada", "me", "mei", "epp", "eireli", "slu", "ss", "cia", "companhia",
        # elsewhere
        "llc", "inc", "incorporated", "ltd", "limited", "corp", "corporation", "co", "company",
        "gmbh", "ag", "plc", "bv", "nv", "srl", "sarl", "spa", "sas", "lp", "llp", "pty", "kg",
        "sl", "sae",
    }
)  # fmt: skip
# "SA" is also the surname Sá: normalise_name keeps it after a particle ("Ana de Sá"), and the
# screener also tries every name with it kept.
AMBIGUOUS_LEGAL_FORMS = frozenset({"sa"})
_LEGAL_FORM_SEQUENCES = (
    ("sociedade", "anonima"),
    ("sociedade", "limitada"),
    ("s", "a"),
    ("s", "c"),
)
ABBREVIATIONS = {
    "jr": "junior",
    "jnr": "junior",
    "fo": "filho",
    "com": "comercio",
    "ind": "industria",
    "serv": "servicos",
    "svcs": "servicos",
    "part": "participacoes",
    "adm": "administracao",
    "distr": "distribuidora",
    "dist": "distribuidora",
    "imp": "importacao",
    "exp": "exportacao",
    "emp": "empreendimentos",
    "transp": "transportes",
    "inst": "instituto",
    "intl": "international",
}
_EXTRA_LETTERS = str.maketrans(
    {"ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "\u0131": "i"}
)
_DOTTED_ACRONYM = re.compile(r"\b([a-z0-9])[./](?=[a-z0-9]\b)")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_FOLD_RULES = (
    (re.compile(r"ph"), "f"),
    (re.compile(r"c(?=[eiy])"), "s"),
    (re.compile(r"qu(?=[eiy])"), "k"),
    (re.compile(r"q"), "k"),
    (re.compile(r"k"), "c"),
    (re.compile(r"cs"), "x"),
    (re.compile(r"y"), "i"),
    (re.compile(r"w"), "v"),
    (re.compile(r"z"), "s"),
    (re.compile(r"(?<![clns])h"), ""),
    (re.compile(r"(.)\1+"), r"\1"),
)
AS_WRITTEN = "as written"

Tokens = tuple[str, ...]


# ---------------------------------------------------------------- normalisation


def _ascii_fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_EXTRA_LETTERS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _drop_legal_forms(tokens: list[str], keep_ambiguous: bool) -> list[str]:
    for sequence in _LEGAL_FORM_SEQUENCES:
        size = len(sequence)
        index = 0
        while index + size <= len(tokens):
            if tuple(tokens[index : index + size]) == sequence:
                del tokens[index : index + size]
            else:
                index += 1
    kept: list[str] = []
    for token in tokens:
        if token in LEGAL_FORMS:
            continue
        ambiguous = token in AMBIGUOUS_LEGAL_FORMS
        if ambiguous and not keep_ambiguous and not (kept and kept[-1] in PARTICLES):
            continue
        kept.append(token)
    return kept


def _normalised(name: str, keep_ambiguous: bool = False) -> list[str]:
    text = _DOTTED_ACRONYM.sub(r"\1", _ascii_fold(name))
    tokens = [ABBREVIATIONS.get(t, t) for t in _NOT_ALNUM.sub(" ", text).split()]
    return _drop_legal_forms(tokens, keep_ambiguous)


def normalise_name(name: str) -> str:
    """Accents and case folded, punctuation to spaces, legal forms dropped, abbreviations
    expanded, spaces collapsed. Particles are kept (:func:`name_tokens` drops them).

    >>> normalise_name("  Comércio de Alimentos São José S.A. ")
    'comercio de alimentos sao jose'
    >>> normalise_name("XPTO Ind. e Com. LTDA - ME"), normalise_name("Ana de Sá")
    ('xpto industria e comercio', 'ana de sa')
    """
    return " ".join(_normalised(name))


def _tokens(name: str, keep_ambiguous: bool) -> Tokens:
    head, comma, tail = name.partition(",")
    tokens = _normalised(name, keep_ambiguous)
    if comma and "," not in tail:
        first, last = _normalised(tail, keep_ambiguous), _normalised(head, keep_ambiguous)
        if first and last:
            tokens = first + last
    kept = tuple(t for t in tokens if t not in PARTICLES)
    return kept or tuple(tokens)


def name_tokens(name: str) -> Tokens:
    """The tokens the scorer compares: normalised, "LAST, First" put back in natural order,
    particles dropped (kept when the name is nothing else).

    >>> name_tokens("DA SILVA, João Carlos")
    ('joao', 'carlos', 'silva')
    """
    return _tokens(name, keep_ambiguous=False)


def name_variants(name: str) -> tuple[tuple[Tokens, str], ...]:
    """:func:`name_tokens`, and the tokens with an ambiguous legal form kept if that differs.

    >>> name_variants("Ivone Aparecida Sá")
    ((('ivone', 'aparecida'), 'as written'), (('ivone', 'aparecida', 'sa'), "kept 'sa'"))
    """
    plain = _tokens(name, keep_ambiguous=False)
    kept = _tokens(name, keep_ambiguous=True)
    if kept == plain:
        return ((plain, AS_WRITTEN),)
    extra = " ".join(t for t in kept if t in AMBIGUOUS_LEGAL_FORMS)
    return ((plain, AS_WRITTEN), (kept, f"kept '{extra}'"))


@lru_cache(maxsize=65_536)
def fold_token(token: str) -> str:
    """A phonetic folding for spelling and transliteration variants (Portuguese-minded).

    >>> [fold_token(t) for t in ("souza", "thiago", "aleksandr", "philippe", "kelly")]
    ['sousa', 'tiago', 'alexandr', 'filipe', 'celi']
    """
    for pattern, replacement in _FOLD_RULES:
        token = pattern.sub(replacement, token)
    return token


def document_digits(document: str | None) -> str | None:
    """CPF/CNPJ as digits only, or None when there are none.

    >>> document_digits("12.345.678/0001-95"), document_digits(" "), document_digits(None)
    ('12345678000195', None, None)
    """
    digits = "".join(c for c in document or "" if c.isdigit())
    return digits or None


# ---------------------------------------------------------------- similarity


def jaro_winkler_py(a: str, b: str) -> float:
    """Reference Jaro-Winkler in pure Python: prefix scale 0.1, up to 4 characters, applied
    when Jaro is above 0.7 (Winkler's boost threshold, as rapidfuzz does)."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    window = max(0, max(len(a), len(b)) // 2 - 1)
    b_used = [False] * len(b)
    a_matched: list[str] = []
    for i, char in enumerate(a):
        for j in range(max(0, i - window), min(len(b), i + window + 1)):
            if not b_used[j] and b[j] == char:
                b_used[j] = True
                a_matched.append(char)
                break
    matches = len(a_matched)
    if not matches:
        return 0.0
    b_matched = [c for c, used in zip(b, b_used, strict=True) if used]
    transpositions = sum(x != y for x, y in zip(a_matched, b_matched, strict=True)) // 2
    jaro = (matches / len(a) + matches / len(b) + (matches - transpositions) / matches) / 3
    if jaro <= 0.7:
        return jaro
    prefix = 0
    for x, y in zip(a[:4], b[:4], strict=False):
        if x != y:
            break
        prefix += 1
    return jaro + prefix * 0.1 * (1 - jaro)


def jaro_winkler(a: str, b: str) -> float:
    """Jaro-Winkler similarity in [0, 1] (prefix scale 0.1, up to 4 characters, over 0.7).

    >>> round(jaro_winkler("MARTHA", "MARHTA"), 3), round(jaro_winkler("DWAYNE", "DUANE"), 3)
    (0.961, 0.84)
    """
    if not HAVE_RAPIDFUZZ:  # pragma: no cover
        return jaro_winkler_py(a, b)
    return float(RfJaroWinkler.similarity(a, b))


def similar_in(
    queries: Sequence[str], choices: Sequence[str], cutoff: float
) -> list[list[tuple[int, float]]]:
    """For each query, (index, Jaro-Winkler) of every choice at least ``cutoff`` similar.

    One C call for all queries (rapidfuzz ``cdist``): the choices are prepared once.

    >>> similar_in(["silva", "lima"], ["silva", "silveira", "lima", "limas"], 0.9)
    [[(0, 1.0), (1, 0.925)], [(2, 1.0), (3, 0.96)]]
    """
    if not queries or not choices:
        return [[] for _ in queries]
    if not HAVE_RAPIDFUZZ:  # pragma: no cover
        scored = [[(i, jaro_winkler_py(q, c)) for i, c in enumerate(choices)] for q in queries]
        return [[(i, s) for i, s in row if s >= cutoff] for row in scored]
    # rapidfuzz's own cutoff test rejects some scores a few ulps above it: ask a little lower
    matrix = rf_process.cdist(
        queries,
        choices,
        scorer=RfJaroWinkler.similarity,
        score_cutoff=max(0.0, cutoff - 1e-3),
        dtype=np.float64,
    )
    rows, columns = np.nonzero(matrix >= cutoff)
    found: list[list[tuple[int, float]]] = [[] for _ in queries]
    for row, column, score in zip(
        rows.tolist(), columns.tolist(), matrix[rows, columns].tolist(), strict=True
    ):
        found[row].append((column, score))
    return found


def token_similarity(a: str, b: str) -> tuple[float, str]:
    """Similarity of two normalised tokens and how it was found.

    "exact", "initial" (one side is a single letter that starts the other), "jaro_winkler",
    "folded" (Jaro-Winkler of the :func:`fold_token` forms, times :data:`FOLD_DISCOUNT`), or
    "none".

    >>> token_similarity("souza", "sousa"), token_similarity("j", "joao")
    ((0.97, 'folded'), (0.9, 'initial'))
    """
    if a == b:
        return 1.0, "exact"
    if len(a) == 1 or len(b) == 1:
        return (INITIAL_SIMILARITY, "initial") if a[0] == b[0] else (0.0, "none")
    spelled = jaro_winkler(a, b)
    folded = FOLD_DISCOUNT * jaro_winkler(fold_token(a), fold_token(b))
    return (folded, "folded") if folded > spelled else (spelled, "jaro_winkler")


def position_weights(count: int) -> tuple[float, ...]:
    """Weight of each token of a ``count``-token name: first and last 1.0, middle 0.5.

    >>> position_weights(1), position_weights(4)
    ((1.0,), (1.0, 0.5, 0.5, 1.0))
    """
    return tuple(EDGE_WEIGHT if i in (0, count - 1) else MIDDLE_WEIGHT for i in range(count))


def subset_bound(matched_weight: float, matched_count: int, query_weight: float) -> float:
    """Highest token-set score a list name can reach when only some query tokens pair with it.

    ``matched_weight`` is the weight of those query tokens, ``matched_count`` their number and
    ``query_weight`` the weight of the whole query. Each pair adds at most its query weight
    plus 1 (no list token weighs more), and the list name weighs at least what its paired
    tokens add, so the score is at most ``(w + k) / (W + k)``.

    >>> round(subset_bound(1.0, 1, 2.0), 3)  # only the surname of "Joao Silva" pairs
    0.667
    """
    total = query_weight + matched_count
    return (matched_weight + matched_count) / total if total else 0.0


Pair = tuple[float, int, int]  # similarity, query index, candidate index


def _assign(pairs: list[Pair]) -> list[Pair]:
    """One-to-one greedy pairing, most similar first (ties by position)."""
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_query: set[int] = set()
    used_candidate: set[int] = set()
    chosen: list[Pair] = []
    for pair in pairs:
        if pair[1] not in used_query and pair[2] not in used_candidate:
            used_query.add(pair[1])
            used_candidate.add(pair[2])
            chosen.append(pair)
    return chosen


def _dice(
    chosen: Sequence[Pair],
    query_weights: Sequence[float],
    candidate_weights: Sequence[float],
    total_weight: float,
) -> float:
    gained = sum(s * (query_weights[i] + candidate_weights[j]) for s, i, j in chosen)
    return round(gained / total_weight, 4) if total_weight else 0.0


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class TokenPair:
    """One query token paired with one list token."""

    query_token: str
    candidate_token: str
    similarity: float
    how: str


@dataclass(frozen=True)
class MatchBreakdown:
    """Why a name matched: what was compared, by which method, token by token."""

    normalised_query: str
    normalised_candidate: str
    query_tokens: Tokens
    candidate_tokens: Tokens
    query_variant: str
    method: str
    score: float
    token_set_score: float
    sorted_jw_score: float
    pairs: tuple[TokenPair, ...]
    unmatched_query: Tokens
    unmatched_candidate: Tokens
    document_conflict: bool = False


@dataclass(frozen=True)
class WatchlistEntry:
    """One listed person or company. ``document``: CPF/CNPJ (punctuation is ignored)."""

    entry_id: str
    name: str
    aliases: tuple[str, ...] = ()
    document: str | None = None
    list_name: str = "SANCTIONS"
    kind: str = "person"

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class ScreeningMatch:
    """A list entry that matched, with the name or alias that matched best."""

    entry_id: str
    list_name: str
    matched_name: str
    score: float
    method: str
    breakdown: MatchBreakdown


def _pairs(
    query: Sequence[str],
    candidate: Sequence[str],
    pair_floor: float,
    similarity: Callable[[str, str], tuple[float, str]],
) -> tuple[list[Pair], dict[tuple[int, int], str]]:
    pairs: list[Pair] = []
    hows: dict[tuple[int, int], str] = {}
    for i, q in enumerate(query):
        for j, c in enumerate(candidate):
            score, how = similarity(q, c)
            if score >= pair_floor:
                pairs.append((score, i, j))
                hows[i, j] = how
    return pairs, hows


def token_set_score(
    query: Sequence[str],
    candidate: Sequence[str],
    pair_floor: float = PAIR_FLOOR,
    similarity: Callable[[str, str], tuple[float, str]] = token_similarity,
) -> float:
    """The token-set score: weighted Dice coefficient of the one-to-one token pairs.

    >>> token_set_score(("joao", "silva"), ("joao", "carlos", "silva"))  # (2 + 2) / (2 + 2.5)
    0.8889
    """
    pairs, _ = _pairs(query, candidate, pair_floor, similarity)
    query_weights = position_weights(len(query))
    candidate_weights = position_weights(len(candidate))
    total = sum(query_weights) + sum(candidate_weights)
    return _dice(_assign(pairs), query_weights, candidate_weights, total)


def explain(
    query: Tokens,
    candidate: Tokens,
    raw_query: str = "",
    raw_candidate: str = "",
    *,
    pair_floor: float = PAIR_FLOOR,
    query_variant: str = AS_WRITTEN,
) -> MatchBreakdown:
    """Score two token sequences by comparing every pair, and say why (the reference scorer)."""
    pairs, hows = _pairs(query, candidate, pair_floor, token_similarity)
    chosen = _assign(pairs)
    query_weights = position_weights(len(query))
    candidate_weights = position_weights(len(candidate))
    total = sum(query_weights) + sum(candidate_weights)
    token_set = _dice(chosen, query_weights, candidate_weights, total)
    sorted_jw = (
        jaro_winkler(" ".join(sorted(query)), " ".join(sorted(candidate)))
        if query and candidate
        else 0.0
    )
    paired_query = {i for _, i, _ in chosen}
    paired_candidate = {j for _, _, j in chosen}
    return MatchBreakdown(
        normalised_query=normalise_name(raw_query) if raw_query else " ".join(query),
        normalised_candidate=normalise_name(raw_candidate)
        if raw_candidate
        else " ".join(candidate),
        query_tokens=tuple(query),
        candidate_tokens=tuple(candidate),
        query_variant=query_variant,
        method="token_set",
        score=token_set,
        token_set_score=token_set,
        sorted_jw_score=round(sorted_jw, 4),
        pairs=tuple(
            TokenPair(query[i], candidate[j], round(s, 4), hows[i, j])
            for s, i, j in sorted(chosen, key=lambda p: p[1])
        ),
        unmatched_query=tuple(t for i, t in enumerate(query) if i not in paired_query),
        unmatched_candidate=tuple(t for j, t in enumerate(candidate) if j not in paired_candidate),
    )


def compare_names(query: str, candidate: str, *, pair_floor: float = PAIR_FLOOR) -> MatchBreakdown:
    """Score two names (best of their :func:`name_variants`) and explain the result.

    >>> b = compare_names("Joao da Silva", "SILVA, João Carlos")
    >>> (b.score, b.method, [p.query_token for p in b.pairs], b.unmatched_candidate)
    (0.8889, 'token_set', ['joao', 'silva'], ('carlos',))
    """
    results = [
        explain(q, c, query, candidate, pair_floor=pair_floor, query_variant=label)
        for q, label in name_variants(query)
        for c, _ in name_variants(candidate)
    ]
    return max(results, key=lambda b: b.score)


# ---------------------------------------------------------------- the screener


@dataclass(frozen=True, slots=True)
class _NameRecord:
    entry_index: int
    name: str
    tokens: Tokens
    token_ids: tuple[int, ...]
    weights: tuple[float, ...]
    weight: float


class NameScreener:
    """Screens a name (and optionally a CPF/CNPJ) against a watchlist.

    Build once per list version; :meth:`screen` changes nothing but a bounded cache of
    query-token neighbours. With ``prefilter=False`` every listed name is scored by
    :func:`explain` (to measure the prefilter; far slower).
    """

    def __init__(
        self,
        entries: Iterable[WatchlistEntry],
        min_score: float = DEFAULT_MIN_SCORE,
        *,
        pair_floor: float = PAIR_FLOOR,
        prefilter: bool = True,
        cache_size: int = 20_000,
    ) -> None:
        if not 0.0 < min_score <= 1.0:
            raise ValueError(f"min_score must be in (0, 1], got {min_score}")
        if not 0.0 < pair_floor <= 1.0:
            raise ValueError(f"pair_floor must be in (0, 1], got {pair_floor}")
        self.min_score = min_score
        self.pair_floor = pair_floor
        self.prefilter = prefilter
        self._cache_size = cache_size
        self._entries = tuple(entries)
        self._records: list[_NameRecord] = []
        self._vocabulary: dict[str, int] = {}
        self._postings: list[list[int]] = []
        self._documents: dict[str, list[int]] = {}
        self._cnpj_roots: dict[str, list[int]] = {}
        self._neighbour_cache: dict[str, tuple[dict[int, float], frozenset[int]]] = {}
        self._initial_cache: dict[str, frozenset[int]] = {}
        for index, entry in enumerate(self._entries):
            self._add(index, entry)
        words = sorted(self._vocabulary, key=self._vocabulary.__getitem__)
        self._long_ids = [i for i, w in enumerate(words) if len(w) > 1]
        self._long_words = [words[i] for i in self._long_ids]
        folded: dict[str, list[int]] = {}
        for token_id in self._long_ids:
            folded.setdefault(fold_token(words[token_id]), []).append(token_id)
        self._folded_words = list(folded)
        self._folded_members = list(folded.values())

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def name_count(self) -> int:
        """Names indexed (names, aliases and their variants, deduplicated per entry)."""
        return len(self._records)

    def _add(self, index: int, entry: WatchlistEntry) -> None:
        digits = document_digits(entry.document)
        if digits:
            self._documents.setdefault(digits, []).append(index)
            if len(digits) == 14:
                self._cnpj_roots.setdefault(digits[:8], []).append(index)
        seen: set[Tokens] = set()
        for name in entry.names:
            for tokens, _ in name_variants(name):
                if not tokens or tokens in seen:
                    continue
                seen.add(tokens)
                ids = tuple(self._vocabulary.setdefault(t, len(self._vocabulary)) for t in tokens)
                for token_id in dict.fromkeys(ids):
                    if token_id == len(self._postings):
                        self._postings.append([])
                    self._postings[token_id].append(len(self._records))
                weights = position_weights(len(tokens))
                self._records.append(_NameRecord(index, name, tokens, ids, weights, sum(weights)))

    def clear_cache(self) -> None:
        """Forget cached query-token neighbours (benchmarks use it to time cold queries)."""
        self._neighbour_cache.clear()

    def query_variants(self, name: str) -> list[tuple[Tokens, str]]:
        """The token sequences a query is screened as: :func:`name_variants`, plus two adjacent
        tokens merged or one token split where the result is listed ("Tecno Sul"/"Tecnosul").
        """
        variants = dict(name_variants(name))
        for tokens, _ in list(variants.items()):
            for i in range(len(tokens) - 1):
                merged = tokens[i] + tokens[i + 1]
                if merged in self._vocabulary:
                    variant = (*tokens[:i], merged, *tokens[i + 2 :])
                    variants.setdefault(variant, f"merged '{tokens[i]} {tokens[i + 1]}'")
            for i, token in enumerate(tokens):
                for cut in range(2, len(token) - 1):
                    head, tail = token[:cut], token[cut:]
                    if head in self._vocabulary and tail in self._vocabulary:
                        variant = (*tokens[:i], head, tail, *tokens[i + 1 :])
                        variants.setdefault(variant, f"split '{token}'")
        return list(variants.items())

    def _neighbours(self, tokens: Iterable[str]) -> None:
        """Cache, for each token, every vocabulary token it pairs with (similarity >= the pair
        floor, by id) and the names holding one of them."""
        wanted = list(dict.fromkeys(tokens))
        missing = [t for t in wanted if t not in self._neighbour_cache]
        if not missing:
            return
        if len(self._neighbour_cache) + len(missing) > self._cache_size:
            self._neighbour_cache.clear()  # crude but bounded; then every wanted token is added
            missing = wanted
        floor = self.pair_floor
        spelled = similar_in(missing, self._long_words, floor)
        folded = similar_in(
            [fold_token(t) for t in missing], self._folded_words, floor / FOLD_DISCOUNT - 1e-9
        )
        for token, spelled_hits, folded_hits in zip(missing, spelled, folded, strict=True):
            found = {self._long_ids[position]: score for position, score in spelled_hits}
            for position, score in folded_hits:
                discounted = FOLD_DISCOUNT * score
                if discounted >= floor:
                    for token_id in self._folded_members[position]:
                        if discounted > found.get(token_id, 0.0):
                            found[token_id] = discounted
            initial = self._vocabulary.get(token[0])
            if initial is not None and floor <= INITIAL_SIMILARITY:
                found[initial] = INITIAL_SIMILARITY
            exact = self._vocabulary.get(token)
            if exact is not None:
                found[exact] = 1.0
            records: set[int] = set()
            for token_id in found:
                records.update(self._postings[token_id])
            self._neighbour_cache[token] = (found, frozenset(records))

    def _initial_records(self, letter: str) -> frozenset[int]:
        """Names with a token starting with ``letter``: what an initial can pair with."""
        found = self._initial_cache.get(letter)
        if found is None:
            records: set[int] = set()
            for word, token_id in self._vocabulary.items():
                if word[0] == letter:
                    records.update(self._postings[token_id])
            found = self._initial_cache[letter] = frozenset(records)
        return found

    def _candidates(self, query: Tokens) -> set[int]:
        """Names hit by enough query tokens to possibly reach ``min_score``."""
        weights = position_weights(len(query))
        total = sum(weights)
        hit_sets = [
            self._neighbour_cache[t][1] if len(t) > 1 else self._initial_records(t) for t in query
        ]
        if len(query) > MAX_SUBSET_TOKENS:
            return set().union(*hit_sets)
        floor = self.min_score - 1e-9
        enough: list[set[int]] = []
        for size in range(1, len(query) + 1):
            for subset in combinations(range(len(query)), size):
                members = set(subset)
                if any(smaller <= members for smaller in enough):
                    continue  # a superset of a sufficient subset adds no name
                if subset_bound(sum(weights[i] for i in subset), size, total) >= floor:
                    enough.append(members)
        found: set[int] = set()
        for members in enough:
            ordered = sorted((hit_sets[i] for i in members), key=len)
            found.update(ordered[0].intersection(*ordered[1:]))
        return found

    def _score(self, query: Tokens, hits: Sequence[dict[int, float]], record: _NameRecord) -> float:
        """The token-set score of :func:`explain`, from the cached neighbour similarities."""
        pairs: list[Pair] = []
        for i, token in enumerate(query):
            if len(token) == 1:
                for j, candidate in enumerate(record.tokens):
                    similarity = token_similarity(token, candidate)[0]
                    if similarity >= self.pair_floor:
                        pairs.append((similarity, i, j))
                continue
            neighbours = hits[i]
            for j, token_id in enumerate(record.token_ids):
                found = neighbours.get(token_id)
                if found is not None:
                    pairs.append((found, i, j))
        query_weights = position_weights(len(query))
        return _dice(
            _assign(pairs), query_weights, record.weights, sum(query_weights) + record.weight
        )

    def _variant_scores(self, query: Tokens) -> dict[int, float]:
        """Score of every listed name reaching ``min_score`` for one query variant."""
        if not self.prefilter:
            similarity = lru_cache(maxsize=None)(token_similarity)  # same values, memoised
            scored = (
                (r, token_set_score(query, record.tokens, self.pair_floor, similarity))
                for r, record in enumerate(self._records)
            )
            return {r: s for r, s in scored if s >= self.min_score}
        hits = [self._neighbour_cache[t][0] if len(t) > 1 else {} for t in query]
        scored = ((r, self._score(query, hits, self._records[r])) for r in self._candidates(query))
        return {r: s for r, s in scored if s >= self.min_score}

    def screen(
        self, name: str, document: str | None = None, limit: int = 5
    ) -> list[ScreeningMatch]:
        """Entries matching ``name`` or ``document``, best first, at most ``limit``."""
        best: dict[int, tuple[float, str, int, int]] = {}  # entry: score, method, record, variant
        variants = self.query_variants(name)
        if self.prefilter:
            self._neighbours(t for tokens, _ in variants for t in tokens if len(t) > 1)
        for v, (tokens, _) in enumerate(variants):
            if not tokens:
                continue
            for r, score in self._variant_scores(tokens).items():
                entry = self._records[r].entry_index
                if entry not in best or score > best[entry][0]:
                    best[entry] = (score, "token_set", r, v)
        digits = document_digits(document)
        if digits:
            root = self._cnpj_roots.get(digits[:8], []) if len(digits) == 14 else []
            for entry in root:
                best[entry] = (1.0, "document_root", -1, 0)
            for entry in self._documents.get(digits, []):
                best[entry] = (1.0, "document", -1, 0)
        ranked = sorted(
            best.items(), key=lambda item: (-item[1][0], self._entries[item[0]].entry_id)
        )
        return [
            self._match(entry, score, method, record, variants[v], name, digits)
            for entry, (score, method, record, v) in ranked[: max(0, limit)]
        ]

    def _match(
        self,
        entry_index: int,
        score: float,
        method: str,
        record: int,
        variant: tuple[Tokens, str],
        raw_query: str,
        digits: str | None,
    ) -> ScreeningMatch:
        entry = self._entries[entry_index]
        tokens, label = variant
        floor = self.pair_floor
        if record >= 0:
            found = self._records[record]
            breakdown = explain(
                tokens, found.tokens, raw_query, found.name, pair_floor=floor, query_variant=label
            )
            matched_name = found.name
        else:  # a document match: explain it against the closest listed name
            explained = [
                (explain(tokens, c, raw_query, n, pair_floor=floor, query_variant=label), n)
                for n in entry.names
                for c, _ in name_variants(n)
            ]
            breakdown, matched_name = max(explained, key=lambda pair: pair[0].score)
        listed = document_digits(entry.document)
        conflict = bool(digits and listed and digits != listed and method != "document_root")
        breakdown = replace(breakdown, method=method, score=score, document_conflict=conflict)
        return ScreeningMatch(
            entry.entry_id, entry.list_name, matched_name, score, method, breakdown
        )
