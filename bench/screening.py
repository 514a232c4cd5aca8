"""Name-screening benchmark: precision/recall on labelled name variants, and time per name.

Builds a deterministic synthetic watchlist of ``--entries`` entries (default 10,000; each with
1-2 aliases) that contains the labelled entries of tests/data/screening_names.json, then
screens every labelled query (true variants and hard negatives) against it:

* precision, recall and F1 at ``--min-score`` and at a few other thresholds; a returned entry
  other than the expected one is a false positive, wherever it is on the list;
* the same for Jaro-Winkler of the sorted token strings alone, the usual baseline;
* whether the prefilter loses anything: every query is screened again with every listed name
  scored (``prefilter=False``) and the results are compared;
* time per screened name, p50/p99/mean, with the token cache cleared before each query (cold)
  and kept (warm).

    .venv/bin/python -m bench.screening [--entries 10000] [--min-score 0.88] [--seed 20240917]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from atalaia.measure import percentile
from engine.screening import (
    DEFAULT_MIN_SCORE,
    NameScreener,
    WatchlistEntry,
    name_tokens,
    name_variants,
    similar_in,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "screening_names.json"
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_NAMES = _words(
    "Maria Jose Ana Joao Antonio Francisco Carlos Paulo Pedro Lucas Luiz Marcos Luis Gabriel "
    "Rafael Daniel Marcelo Bruno Eduardo Felipe Raimundo Rodrigo Manoel Mateus Andre Fernando "
    "Fabio Leonardo Gustavo Guilherme Leandro Tiago Anderson Ricardo Marcio Jorge Sebastiao "
    "Alexandre Roberto Edson Diego Vitor Sergio Claudio Matheus Thiago Geraldo Adriano Luciano "
    "Julio Renato Alex Vinicius Rogerio Samuel Ronaldo Mario Flavio Igor Douglas Davi Leticia "
    "Francisca Antonia Adriana Juliana Marcia Fernanda Patricia Aline Sandra Camila Amanda "
    "Bruna Jessica Leticia Julia Luciana Vanessa Mariana Gabriela Vera Vitoria Larissa Claudia "
    "Beatriz Rita Luana Sonia Renata Eliane Josefa Simone Natalia Cristiane Carla Debora "
    "Rosangela Jaqueline Rosa Daniela Aparecida Marlene Terezinha Raimunda Andreia Fabiana "
    "Lucia Raquel Angela Rafaela Joana Luzia Elaine Daniele Regina Sabrina Tatiane Silvia "
    "Helena Katia Heloisa Valeria Ivone Rosana Kelly Wellington Washington Cleiton Jefferson"
)
MIDDLE_NAMES = _words(
    "Aparecida Carlos Eduardo Henrique Augusto Cristina Helena Paula Luiz Antonio Roberto "
    "Fernanda Regina Batista Marcos Vitoria Alberto Luiza Clara Beatriz Gabriel Miguel Rosa "
    "Fatima Conceicao Jose Maria Vinicius Felipe Gustavo Emanuel Rafael Rodrigo"
)
SURNAMES = _words(
    "Silva Santos Oliveira Souza Rodrigues Ferreira Alves Pereira Lima Gomes Costa Ribeiro "
    "Martins Carvalho Almeida Lopes Soares Fernandes Vieira Barbosa Rocha Dias Nascimento "
    "Andrade Moreira Nunes Marques Machado Mendes Freitas Cardoso Ramos Goncalves Santana "
    "Teixeira Moura Cavalcanti Araujo Pinto Campos Correia Monteiro Melo Batista Reis Moraes "
    "Castro Barros Borges Azevedo Medeiros Farias Miranda Sales Cunha Leite Pires Prado "
    "Vasconcelos Figueiredo Queiroz Guimaraes Bezerra Siqueira Nogueira Magalhaes Albuquerque "
    "Bittencourt Mello Fonseca Brandao Rezende Aguiar Tavares Coelho Sampaio Xavier Macedo "
    "Peixoto Diniz Pacheco Lacerda Vilela Damasceno Fontes Furtado Bragança Salles Leme Paiva "
    "Camargo Assis Bastos Fagundes Toledo Franco Viana Amaral Matos Braga Duarte Cruz Lima"
)
INTERNATIONAL = {
    "arabic": (
        "Mohammed Ahmed Ali Hassan Hussein Omar Khalid Yusuf Ibrahim Abdullah Mahmoud Karim "
        "Tariq Samir Nabil Walid Faisal Hamid Rashid Jamal Bilal Said Mustafa Amir Fadi Ziad",
        "Al-Masri Haddad Khoury Nasser Saleh Mansour Hamdan Qasim Aziz Rahman Farouk Habib "
        "Abbas Darwish Nouri Osman Bakr Zaki Suleiman Jaber Kassem Hijazi Sabbagh Tamimi",
    ),
    "russian": (
        "Aleksandr Sergei Dmitri Andrei Alexei Ivan Mikhail Nikolai Vladimir Yuri Igor Oleg "
        "Pavel Viktor Boris Anatoly Gennady Konstantin Olga Natalia Elena Irina Svetlana Tatiana",
        "Ivanov Smirnov Kuznetsov Popov Vasiliev Petrov Sokolov Mikhailov Novikov Fedorov "
        "Morozov Volkov Alekseev Lebedev Semenov Egorov Pavlov Kozlov Stepanov Nikolaev Orlov "
        "Andreev Makarov Zakharov Zaitsev Solovyov Borisov Yakovlev Grigoriev Romanov",
    ),
    "hispanic": (
        "Juan Jose Luis Carlos Jorge Manuel Miguel Pedro Alejandro Ricardo Fernando Javier "
        "Rafael Sergio Diego Andres Alberto Eduardo Raul Hector Ramon Guadalupe Rosa Carmen",
        "Garcia Rodriguez Martinez Hernandez Lopez Gonzalez Perez Sanchez Ramirez Torres Flores "
        "Rivera Gomez Diaz Reyes Morales Jimenez Ruiz Alvarez Mendoza Castillo Ortiz Vargas "
        "Restrepo Guzman Herrera Medina Aguilar Salazar Ochoa Cardenas Quintero Zapata",
    ),
    "chinese": (
        "Wei Fang Min Jing Lei Jun Yang Yong Jie Tao Ming Chao Hui Xiaoming Jianguo Lihua Haiyan",
        "Wang Li Zhang Liu Chen Yang Zhao Huang Zhou Wu Xu Sun Hu Zhu Gao Lin He Guo Ma Luo",
    ),
    "korean": (
        "Chol Song Yong Il Nam Hyok Jin Kwang Myong Hyon Chun Su",
        "Kim Ri Pak Choe Jong Kang Jo Yun Jang Han Hwang",
    ),
    "african": (
        "Jean-Pierre Joseph Emmanuel Patrice Didier Moise Felix Thomas Samuel Amadou Moussa",
        "Kabila Mutombo Tshisekedi Lumumba Kabongo Ilunga Diallo Traore Keita Coulibaly Ndiaye",
    ),
}
COMPANY_KINDS = (
    "Comercio",
    "Industria",
    "Servicos",
    "Transportes",
    "Construtora",
    "Distribuidora",
    "Agropecuaria",
    "Participacoes",
    "Importacao e Exportacao",
    "Tecnologia",
    "Logistica",
    "Engenharia",
    "Mineracao",
    "Alimentos",
    "Trading",
    "Shipping",
    "Holdings",
    "Energy",
    "Investimentos",
    "Consultoria",
)
LEGAL = ("Ltda", "Ltda - ME", "S.A.", "S/A", "Eireli", "EPP", "ME", "LLC", "Ltd", "Inc.")
SYLLABLES = _words(
    "ta te ti to tu ma me mi mo mu na ne ni no nu ra re ri ro ru sa se si so su la le li lo "
    "lu ca co cu va ve vi vo ba be bo bra tri pro tec nor sul al ex in an ar or es on"
)


@dataclass(frozen=True)
class Query:
    query: str
    document: str | None
    expected: str | None
    target: str | None
    variant: str


def load_labelled(path: Path = DATA) -> tuple[list[WatchlistEntry], list[Query]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries = [
        WatchlistEntry(
            entry_id=e["entry_id"],
            name=e["name"],
            aliases=tuple(e["aliases"]),
            document=e["document"],
            list_name=e["list_name"],
            kind=e["kind"],
        )
        for e in raw["watchlist"]
    ]
    queries = [
        Query(q["query"], q["document"], q["expected"], q["target"], q["variant"])
        for q in raw["queries"]
    ]
    return entries, queries


def _digits(rng: random.Random, count: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(count))


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 1)
    action = rng.choice(("swap", "drop", "double"))
    if action == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    if action == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


def _brazilian(rng: random.Random) -> tuple[str, tuple[str, ...], str]:
    first = rng.choice(FIRST_NAMES)
    middle = rng.sample(MIDDLE_NAMES, rng.choice((0, 1, 1, 2)))
    surnames = rng.sample(SURNAMES, rng.choice((1, 2, 2, 3)))
    parts = [first, *middle]
    for surname in surnames:
        if rng.random() < 0.25:
            parts.append(rng.choice(("da", "de", "dos")))
        parts.append(surname)
    if rng.random() < 0.05:
        parts.append(rng.choice(("Filho", "Junior", "Neto")))
    name = " ".join(parts)
    short = f"{first} {surnames[-1]}"
    aliases = [f"{surnames[-1].upper()}, {' '.join(parts[:-1]).upper()}"]
    if rng.random() < 0.5:
        aliases.append(short if rng.random() < 0.5 else " ".join(_typo(rng, p) for p in parts))
    return name, tuple(aliases), _digits(rng, 11)


def _international(rng: random.Random) -> tuple[str, tuple[str, ...], None]:
    givens, families = INTERNATIONAL[rng.choice(list(INTERNATIONAL))]
    given, family = givens.split(), families.split()
    parts = [rng.choice(given)]
    if rng.random() < 0.6:
        parts.append(rng.choice(given))
    parts.append(rng.choice(family))
    name = " ".join(parts)
    aliases = [" ".join(_typo(rng, p) for p in parts)]
    if rng.random() < 0.5:
        aliases.append(f"{parts[-1]}, {parts[0]}")
    return name, tuple(aliases), None


def _company(rng: random.Random) -> tuple[str, tuple[str, ...], str]:
    brand = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()
    if rng.random() < 0.3:
        brand = f"{brand} {rng.choice(SURNAMES)}"
    kind = rng.choice(COMPANY_KINDS)
    name = f"{brand} {kind} {rng.choice(LEGAL)}"
    aliases = [f"{brand} {rng.choice(LEGAL)}"]
    if rng.random() < 0.5:
        aliases.append(f"{kind} {brand}")
    return name, tuple(aliases), _digits(rng, 14)


def synthetic_watchlist(
    labelled: Sequence[WatchlistEntry], queries: Sequence[Query], size: int, seed: int
) -> list[WatchlistEntry]:
    """``labelled`` plus filler up to ``size``; no filler name is token-equal to a query."""
    rng = random.Random(seed)
    taken = {frozenset(name_tokens(q.query)) for q in queries}
    taken |= {frozenset(name_tokens(n)) for e in labelled for n in e.names}
    entries = list(labelled)
    lists = {"pep": "PEP", "intl": "OFAC", "company": "CEIS"}
    while len(entries) < size:
        roll = rng.random()
        kind = "pep" if roll < 0.55 else "intl" if roll < 0.8 else "company"
        maker = {"pep": _brazilian, "intl": _international, "company": _company}[kind]
        name, aliases, document = maker(rng)
        keys = {frozenset(t) for n in (name, *aliases) for t, _ in name_variants(n)}
        if keys & taken:
            continue
        entries.append(
            WatchlistEntry(
                entry_id=f"F{len(entries):05d}",
                name=name,
                aliases=aliases,
                document=document,
                list_name=lists[kind],
                kind="company" if kind == "company" else "person",
            )
        )
    return entries


Found = dict[int, dict[str, float]]  # query index: entry id -> score


def _screen_all(screener: NameScreener, queries: Sequence[Query]) -> Found:
    return {
        i: {m.entry_id: m.score for m in screener.screen(q.query, q.document, limit=50)}
        for i, q in enumerate(queries)
    }


def _sorted_jw_all(entries: Sequence[WatchlistEntry], queries: Sequence[Query]) -> Found:
    """The baseline: Jaro-Winkler of sorted token strings, best name per entry, no prefilter."""
    keys = [
        (e.entry_id, " ".join(sorted(t)))
        for e in entries
        for n in e.names
        for t, _ in name_variants(n)
    ]
    texts = [" ".join(sorted(name_tokens(q.query))) for q in queries]
    found: Found = {}
    for i, row in enumerate(similar_in(texts, [key for _, key in keys], THRESHOLDS[0])):
        best: dict[str, float] = {}
        for position, score in row:
            entry_id = keys[position][0]
            best[entry_id] = max(score, best.get(entry_id, 0.0))
        found[i] = best
    return found


@dataclass(frozen=True)
class Quality:
    threshold: float
    tp: int
    fp: int
    fn: int
    fp_on_filler: int
    negatives_alerted: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def quality(found: Found, queries: Sequence[Query], threshold: float) -> Quality:
    tp = fp = fn = on_filler = alerted = 0
    for i, q in enumerate(queries):
        hits = {e for e, s in found[i].items() if s >= threshold - 1e-9}
        if q.expected is not None:
            tp += q.expected in hits
            fn += q.expected not in hits
        elif hits:
            alerted += 1
        wrong = hits - {q.expected}
        fp += len(wrong)
        on_filler += sum(e.startswith("F") for e in wrong)
    return Quality(threshold, tp, fp, fn, on_filler, alerted)


def _timings(screener: NameScreener, queries: Sequence[Query], cold: bool, rounds: int) -> str:
    micros: list[float] = []
    if not cold:
        for q in queries:  # fill the token cache first
            screener.screen(q.query, q.document)
    for _ in range(rounds):
        for q in queries:
            if cold:
                screener.clear_cache()
            started = time.perf_counter_ns()
            screener.screen(q.query, q.document)
            micros.append((time.perf_counter_ns() - started) / 1000)
    mean = sum(micros) / len(micros)
    p50, p99 = percentile(micros, 0.50, 0.0), percentile(micros, 0.99, 0.0)
    return f"p50 {p50:7.0f} us   p99 {p99:7.0f} us   mean {mean:7.0f} us   ({len(micros)} screens)"


def _table(title: str, rows: Iterable[Quality], mark: float | None = None) -> list[str]:
    lines = [
        title,
        "  min_score  precision  recall     F1   TP  FP (filler)  FN  negatives alerted",
    ]
    for r in rows:
        star = " <" if mark is not None and abs(r.threshold - mark) < 1e-9 else ""
        lines.append(
            f"  {r.threshold:9.2f}  {r.precision:9.3f}  {r.recall:6.3f}  {r.f1:5.3f}  "
            f"{r.tp:3d} {r.fp:3d} ({r.fp_on_filler:3d})    {r.fn:3d}  "
            f"{r.negatives_alerted:4d}{star}"
        )
    return lines


def _misses(found: Found, queries: Sequence[Query], threshold: float) -> list[str]:
    lines = []
    for i, q in enumerate(queries):
        hits = {e: s for e, s in found[i].items() if s >= threshold - 1e-9}
        if q.expected is not None and q.expected not in hits:
            score = found[i].get(q.expected)
            lines.append(f"  FN {q.expected} {q.variant:26s} {q.query!r} (best {score})")
        for entry_id, score in sorted(hits.items()):
            if entry_id != q.expected:
                lines.append(f"  FP {entry_id} {score:.4f} {q.variant:20s} {q.query!r}")
    return lines


def _timed(action: Callable[[], Found]) -> tuple[Found, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--min-score", type=float, default=DEFAULT_MIN_SCORE)
    parser.add_argument("--seed", type=int, default=20240917)
    parser.add_argument("--rounds", type=int, default=5, help="warm timing passes")
    parser.add_argument("--no-brute", action="store_true", help="skip the prefilter check")
    parser.add_argument("--show-errors", action="store_true", help="list FP/FN at min score")
    args = parser.parse_args()

    labelled, queries = load_labelled()
    started = time.perf_counter()
    entries = synthetic_watchlist(labelled, queries, args.entries, args.seed)
    lowest = min(THRESHOLDS[0], args.min_score)
    screener = NameScreener(entries, min_score=lowest)
    build_s = time.perf_counter() - started
    thresholds = sorted({*THRESHOLDS, args.min_score})
    found, screen_s = _timed(lambda: _screen_all(screener, queries))
    baseline = _sorted_jw_all(entries, queries)
    positives = sum(q.expected is not None for q in queries)

    out = [
        f"name screening: {len(queries)} labelled queries ({positives} true variants, "
        f"{len(queries) - positives} hard negatives) against {len(entries)} entries "
        f"({screener.name_count} indexed names), {platform.machine()} "
        f"Python {platform.python_version()}",
        f"watchlist built and indexed in {build_s:.2f} s",
        "",
        *_table(
            "token pairing (engine.screening)",
            (quality(found, queries, t) for t in thresholds),
            args.min_score,
        ),
        "",
        *_table(
            "baseline: Jaro-Winkler of sorted token strings",
            (quality(baseline, queries, t) for t in thresholds),
        ),
    ]
    if not args.no_brute:
        brute_screener = NameScreener(entries, min_score=lowest, prefilter=False)
        brute, brute_s = _timed(lambda: _screen_all(brute_screener, queries))
        pairs = sum(len(v) for v in brute.values())
        lost = sum(len(set(brute[i]) - set(found[i])) for i in brute)
        differing = sum(
            1 for i in brute for e in brute[i] if e in found[i] and brute[i][e] != found[i][e]
        )
        extra = sum(len(set(found[i]) - set(brute[i])) for i in brute)
        recall_all = quality(brute, queries, args.min_score).recall
        out += [
            "",
            f"prefilter check at min_score {lowest:.2f}: scoring every name found {pairs} matches; "
            f"the prefilter lost {lost}, added {extra}, scored {differing} differently "
            f"(recall at {args.min_score:.2f}: {recall_all:.3f} without prefilter, "
            f"{quality(found, queries, args.min_score).recall:.3f} with); "
            f"{brute_s / len(queries) * 1000:.0f} ms vs "
            f"{screen_s / len(queries) * 1000:.2f} ms per query",
        ]
    timing = NameScreener(entries, min_score=args.min_score)
    out += [
        "",
        f"time per screened name at min_score {args.min_score:.2f} ({len(entries)} entries):",
        f"  cold (token cache cleared before each) {_timings(timing, queries, True, 1)}",
        f"  warm (token cache kept)                {_timings(timing, queries, False, args.rounds)}",
    ]
    if args.show_errors:
        out += ["", f"errors at {args.min_score:.2f}:", *_misses(found, queries, args.min_score)]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
