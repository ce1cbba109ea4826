-- A catalog of real tracks with audio features (pressedplay.catalog).
-- The eight features are required; tempo, key, mode, popularity are kept when given.
PRAGMA user_version = 1;

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);  -- source, sha256, imported_at

CREATE TABLE tracks (
    id TEXT PRIMARY KEY,           -- Spotify track id (22 base-62 characters)
    name TEXT NOT NULL,
    artist TEXT NOT NULL,
    album TEXT,
    popularity INTEGER,
    tempo REAL,
    key INTEGER,
    mode INTEGER,
    duration_ms INTEGER,
    acousticness REAL NOT NULL,
    danceability REAL NOT NULL,
    energy REAL NOT NULL,
    instrumentalness REAL NOT NULL,
    liveness REAL NOT NULL,
    loudness REAL NOT NULL,
    speechiness REAL NOT NULL,
    valence REAL NOT NULL
) WITHOUT ROWID;

-- A track listed in several playlists keeps every (genre, subgenre) it was listed under.
CREATE TABLE track_genres (
    track_id TEXT NOT NULL REFERENCES tracks(id),
    genre TEXT NOT NULL,
    subgenre TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (track_id, genre, subgenre)
) WITHOUT ROWID;
CREATE INDEX track_genres_genre ON track_genres(genre);
