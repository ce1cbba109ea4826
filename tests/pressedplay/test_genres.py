"""Fine-grained Spotify genres onto a catalog's genres: rules, user mapping, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pressedplay.errors import UserError
from pressedplay.genres import GenreMapper, load_mapping, normalise

TIDYTUESDAY = ["edm", "latin", "pop", "r&b", "rap", "rock"]
SAMPLE_MAPPING = Path(__file__).parent / "fixtures" / "genremappings_sample.json"
# Every (subgenre, genre) of TidyTuesday's spotify_songs.csv: Spotify genre names that
# the playlist curators filed under the catalog's six genres.
TIDYTUESDAY_SUBGENRES = {
    "electro house": "edm",
    "big room": "edm",
    "pop edm": "edm",
    "progressive electro house": "edm",
    "reggaeton": "latin",
    "tropical": "latin",
    "latin pop": "latin",
    "latin hip hop": "latin",
    "post-teen pop": "pop",
    "electropop": "pop",
    "dance pop": "pop",
    "indie poptimism": "pop",
    "new jack swing": "r&b",
    "urban contemporary": "r&b",
    "hip pop": "r&b",
    "neo soul": "r&b",
    "trap": "rap",
    "hip hop": "rap",
    "southern hip hop": "rap",
    "gangster rap": "rap",
    "album rock": "rock",
    "permanent wave": "rock",
    "hard rock": "rock",
    "classic rock": "rock",
}


@pytest.mark.parametrize(
    ("fine", "expected"),
    [
        ("dark trap", {"rap"}),
        ("indie soul", {"r&b"}),  # the last genre word is the head
        ("hip hop", {"rap"}),
        ("tech house", {"edm"}),
        ("reggaeton", {"latin"}),
        ("Reggaetón", {"latin"}),
        ("hip-hop", {"rap"}),  # Spotify seed genre spellings
        ("r-n-b", {"r&b"}),
        ("RnB", {"r&b"}),
        ("drum-and-bass", {"edm"}),
        ("k-pop", {"pop"}),
        ("cantopop", {"pop"}),  # compound words
        ("metalcore", {"rock"}),
        ("uk drill", {"rap"}),
        ("pop rap", {"rap"}),
        ("trap latino", {"rap", "latin"}),  # regional words count as well as the head
        ("urbano latino", {"latin"}),
        ("pov: indie", {"rock"}),
        ("tropical house", {"edm"}),  # the longer phrase wins over the regional word
        ("indie folk", set()),  # folk is the head and this catalog has none
        ("polka", set()),
        ("", set()),
    ],
)
def test_token_rules_on_tidytuesday_genres(fine, expected) -> None:
    assert GenreMapper(TIDYTUESDAY).map(fine) == expected


def test_every_tidytuesday_subgenre_lands_in_its_genre() -> None:
    mapper = GenreMapper(TIDYTUESDAY)
    for fine, genre in TIDYTUESDAY_SUBGENRES.items():
        assert genre in mapper.map(fine), fine


def test_a_richer_catalog_gets_the_specific_genre() -> None:
    """Kaggle's tracks dataset has genres named like Spotify's seeds: the most specific
    one the catalog has wins over the family."""
    mapper = GenreMapper(["soul", "r-n-b", "house", "edm", "hip-hop", "k-pop", "latino", "folk"])
    assert mapper.map("indie soul") == {"soul"}
    assert mapper.map("new jack swing") == {"r-n-b"}
    assert mapper.map("tech house") == {"house"}
    assert mapper.map("dark trap") == {"hip-hop"}
    assert mapper.map("K-Pop") == {"k-pop"}
    assert mapper.map("trap latino") == {"hip-hop", "latino"}
    assert mapper.map("indie folk") == {"folk"}


def test_catalog_names_keep_their_spelling() -> None:
    mapper = GenreMapper(["Hip-Hop", "R&B", "Rock"])
    assert mapper.map("southern hip hop") == {"Hip-Hop"}
    assert mapper.map("neo soul") == {"R&B"}
    assert mapper.map("classic rock") == {"Rock"}


def test_user_mapping_sample_of_genremappings_json() -> None:
    mapping = load_mapping(SAMPLE_MAPPING)
    assert mapping["permanent wave"] == ["new-wave", "rock"]
    mapper = GenreMapper(TIDYTUESDAY, mapping)
    assert mapper.map("permanent wave") == {"rock"}
    assert mapper.map("rap") == {"rap"}  # via the seed genre hip-hop
    assert mapper.map("urbano latino") == {"latin"}
    assert mapper.map("pop rap") == {"pop", "rap"}  # the file's targets, not the head rule
    assert mapper.map("indie soul") == {"r&b", "rock"}  # ["soul", "indie"]
    assert mapper.map("nightcore") == {"edm"}  # rules alone know nothing of nightcore
    assert GenreMapper(TIDYTUESDAY).map("nightcore") == set()
    # Targets that reach no catalog genre fall back to the rules on the name itself.
    assert mapper.map("filmi") == set()
    fallback = GenreMapper(TIDYTUESDAY, {"dark trap": ["world-music"]})
    assert fallback.map("dark trap") == {"rap"}


def test_user_mapping_overrides_the_rules() -> None:
    mapper = GenreMapper(TIDYTUESDAY, {"Dark Trap": ["rock"]})
    assert mapper.map("dark trap") == {"rock"}


def test_normalise() -> None:
    assert normalise("  Hip_Hop ") == "hip hop"
    assert normalise("R & B") == "r&b"
    assert normalise("rhythm and blues") == "rhythm and blues"
    assert normalise("música mexicana") == "musica mexicana"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "must hold a JSON object"),
        ('{"pop": "pop"}', "'pop' must map to a non-empty list"),
        ('{"pop": []}', "'pop' must map to a non-empty list"),
        ('{"pop": ["pop", 3]}', "'pop' must map to a non-empty list"),
        ('{"pop": [" "]}', "'pop' must map to a non-empty list"),
        ('{"pop": ["pop"]', "is not a JSON genre mapping"),
    ],
)
def test_load_mapping_refuses_wrong_shapes(tmp_path, text, message) -> None:
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_mapping(path)


def test_load_mapping_missing_and_binary_files(tmp_path) -> None:
    with pytest.raises(UserError, match="no genre mapping file"):
        load_mapping(tmp_path / "absent.json")
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(UserError, match="is not a JSON genre mapping"):
        load_mapping(binary)


def test_sample_fixture_is_real_shape() -> None:
    data = json.loads(SAMPLE_MAPPING.read_text())
    assert len(data) == 40 and all(1 <= len(v) <= 3 for v in data.values())
