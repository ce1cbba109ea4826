"""Map Spotify's fine-grained genre names ("dark trap", "indie soul") onto a catalog's genres.

Spotify tags artists with thousands of genres; a catalog knows a handful (TidyTuesday: edm,
latin, pop, r&b, rap, rock). The mapper tries, in order: a user mapping file (explicit
intent wins), the catalog's own genre names, then token rules. Fine genre names are
English noun phrases whose last genre word is the head ("indie soul" is soul, "dance pop"
is pop), so of the words a name contains, the last one the rules know decides; regional
words (latin, latino, reggaeton, cumbia...) are added as well, because catalogs file
"latin pop" and "trap latino" under latin.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from pressedplay import inputs
from pressedplay.errors import UserError

# Rule word or phrase -> catalog genres it stands for, most specific first: the first one
# the catalog has wins, so a catalog with "soul" gets soul and TidyTuesday's gets r&b.
_RAP = ("rap", "hip hop")
_RNB = ("r&b", "soul")
_EDM = ("edm", "electronic", "electro", "dance")
_ROCK = ("rock",)
_METAL = ("metal", "heavy metal", "rock")
_LATIN = ("latin", "latino")
RULES: dict[str, tuple[str, ...]] = {
    # rap
    **{w: (w, *_RAP) for w in ("trap", "drill", "grime", "crunk", "phonk", "hyphy", "bounce")},
    "boom bap": _RAP,
    "hip hop": ("hip hop", "rap"),
    "rap": _RAP,
    "rapper": _RAP,
    "hip pop": _RNB,  # Spotify's name for R&B-leaning hip hop (TidyTuesday files it so)
    # r&b
    "r&b": _RNB,
    **{w: (w, *_RNB) for w in ("soul", "funk", "gospel", "motown", "disco", "doo wop")},
    "new jack swing": _RNB,
    "quiet storm": _RNB,
    "urban contemporary": _RNB,
    # edm
    **{
        w: (w, *_EDM)
        for w in (
            "house",
            "techno",
            "trance",
            "dubstep",
            "brostep",
            "hardstyle",
            "electronica",
            "breakbeat",
            "idm",
            "garage",
            "jungle",
            "drum and bass",
            "dnb",
            "big room",
            "tropical house",
            "moombahton",
            "synthwave",
            "chillwave",
            "vaporwave",
            "future bass",
            "trip hop",
            "downtempo",
            "ambient",
            "club",
        )
    },
    "edm": _EDM,
    "electronic": _EDM,
    "electro": ("electro", "electronic", "edm", "dance"),
    "dance": ("dance", "edm", "electronic"),
    # pop
    "pop": ("pop",),
    "poptimism": ("pop",),
    "idol": ("pop",),
    "boy band": ("pop",),
    "girl group": ("pop",),
    # rock
    "rock": _ROCK,
    "rock n roll": ("rock n roll", "rockabilly", "rock"),
    "rockabilly": ("rockabilly", "rock"),
    "alternative": ("alternative", "alt rock", "rock"),
    "indie": ("indie", "alternative", "rock"),
    "permanent wave": ("rock",),
    "new wave": ("new wave", "rock"),
    "post punk": ("post punk", "punk", "rock"),
    "grunge": ("grunge", "alternative", "rock"),
    "shoegaze": ("shoegaze", "alternative", "rock"),
    "britpop": ("britpop", "rock"),
    "punk": ("punk", "punk rock", "rock"),
    "emo": ("emo", "punk", "rock"),
    "goth": ("goth", "rock"),
    "psych": ("psych rock", "psychedelic", "rock"),
    "psychedelic": ("psychedelic", "psych rock", "rock"),
    **{w: (w, *_METAL) for w in ("metal", "metalcore", "deathcore", "grindcore", "djent")},
    "hardcore": ("hardcore", "punk", "rock"),
    "industrial": ("industrial", "metal", "rock"),
    # genres TidyTuesday lacks, kept so that richer catalogs (Kaggle's 114) find them
    **{
        w: (w,)
        for w in (
            "jazz",
            "blues",
            "country",
            "folk",
            "classical",
            "opera",
            "reggae",
            "ska",
            "afrobeat",
            "afrobeats",
            "anime",
            "singer songwriter",
            "acoustic",
            "piano",
            "soundtrack",
            "children",
            "comedy",
        )
    },
    "dancehall": ("dancehall", "reggae"),
    "bluegrass": ("bluegrass", "country"),
    "honky tonk": ("honky tonk", "country"),
    "americana": ("americana", "country", "folk"),
    "bebop": ("bebop", "jazz"),
    "swing": ("swing", "jazz"),
}
# Regional words: counted even when another word is the head ("latin pop" -> latin and pop).
REGIONAL: dict[str, tuple[str, ...]] = {
    w: (w, *_LATIN)
    for w in (
        "latin",
        "latino",
        "latina",
        "reggaeton",
        "urbano",
        "dembow",
        "perreo",
        "cumbia",
        "salsa",
        "bachata",
        "merengue",
        "tropical",
        "mexicana",
        "mexicano",
        "corrido",
        "corridos",
        "banda",
        "norteno",
        "mariachi",
        "ranchera",
        "vallenato",
        "bolero",
        "tango",
        "flamenco",
        "argentino",
        "chileno",
        "colombiano",
        "peruano",
        "espanol",
        "samba",
        "bossa nova",
        "bossanova",
        "sertanejo",
        "forro",
        "pagode",
        "mpb",
        "funk carioca",
        "brazil",
        "brazilian",
        "spanish",
        "mexican",
        "colombian",
        "argentine",
        "cuban",
        "dominican",
        "puerto rican",
        "venezuelan",
    )
}
# Compound words: "electropop" is pop, "metalcore" metal; checked when no rule names the word.
_SUFFIXES = (("pop", "pop"), ("rock", "rock"), ("step", "dubstep"), ("house", "house"))
_MAX_PHRASE = max(len(phrase.split()) for phrase in (*RULES, *REGIONAL))


def normalise(genre: str) -> str:
    """One spelling per genre: lower case without accents, '-'/'_' as spaces, "r&b", "hip hop"."""
    text = unicodedata.normalize("NFKD", genre.strip().casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))  # "reggaetón"
    text = text.replace("_", " ").replace("-", " ")
    text = re.sub(r"\br\s*(?:&|n|and)\s*b\b|\brnb\b", "r&b", text)
    text = re.sub(r"\bhip\s*hop\b", "hip hop", text)
    text = re.sub(r"[^\w&' ]+", " ", text)  # "pov: indie" -> "pov indie"
    return " ".join(text.split())


class GenreMapper:
    """Maps one fine genre name to the set of catalog genres it belongs to (maybe none)."""

    def __init__(
        self,
        catalog_genres: Iterable[str],
        user_mapping: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._catalog = {normalise(g): g for g in catalog_genres}
        self._user = {normalise(k): list(v) for k, v in (user_mapping or {}).items()}

    def map(self, fine_genre: str) -> set[str]:
        """The catalog genres `fine_genre` belongs to; empty when nothing matches."""
        name = normalise(fine_genre)
        if name in self._user:
            found = set().union(*(self._rules(normalise(t)) for t in self._user[name]))
            if found:
                return found
        return self._rules(name)

    def _rules(self, name: str) -> set[str]:
        if name in self._catalog:
            return {self._catalog[name]}
        head: set[str] = set()
        regional: set[str] = set()
        words = name.split()
        i = 0
        while i < len(words):
            for size in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
                phrase = " ".join(words[i : i + size])
                found = self._phrase(phrase)
                if found is not None:
                    if phrase in REGIONAL:
                        regional |= found
                    else:  # the last genre word is the head, even one this catalog lacks
                        head = found
                    i += size
                    break
            else:
                i += 1
        return head | regional

    def _phrase(self, phrase: str) -> set[str] | None:
        """The catalog genres a phrase names; None when it is not a genre word at all."""
        if phrase in self._catalog:
            return {self._catalog[phrase]}
        candidates = RULES.get(phrase) or REGIONAL.get(phrase)
        if candidates is None and " " not in phrase:
            candidates = next(
                (RULES[rule] for suffix, rule in _SUFFIXES if phrase.endswith(suffix)), None
            )
        if candidates is None:
            return None
        first = next((self._catalog[c] for c in candidates if c in self._catalog), None)
        return {first} if first else set()


def load_mapping(path: Path | str) -> dict[str, list[str]]:
    """A user mapping file {fine genre: [target genre, ...]}, as genremappings.json."""
    path = Path(path)
    try:
        data = inputs.read_json(path)
    except inputs.InputError as exc:
        if exc.reason == "no such file":
            raise UserError(f"no genre mapping file at {path}") from None
        raise UserError(f"{path} is not a JSON genre mapping: {exc.reason}") from None
    if not isinstance(data, dict):
        raise UserError(
            f"{path} must hold a JSON object {{fine genre: [genre, ...]}}, "
            f"not a {type(data).__name__}"
        )
    for key, targets in data.items():
        if (
            not isinstance(targets, list)
            or not targets
            or not all(isinstance(t, str) and t.strip() for t in targets)
        ):
            raise UserError(
                f"{path}: {key!r} must map to a non-empty list of genre names, not {targets!r}"
            )
    return data
