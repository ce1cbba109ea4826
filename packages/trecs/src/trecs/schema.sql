-- The trecs database: the Million Playlist Dataset (or data in its format) in sqlite.
-- Tables only; the indices are in the INDICES section below and are created after the
-- bulk insert, because maintaining them row by row slows the build several times over.

CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE artists (
    id INTEGER PRIMARY KEY,
    uri TEXT NOT NULL,
    name TEXT NOT NULL
);

CREATE TABLE albums (
    id INTEGER PRIMARY KEY,
    uri TEXT NOT NULL,
    name TEXT NOT NULL
);

-- Audio features are NULL unless `trecs build-db --features CATALOG.csv` knew the track.
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    uri TEXT NOT NULL,
    name TEXT NOT NULL,
    album_id INTEGER NOT NULL REFERENCES albums(id),
    artist_id INTEGER NOT NULL REFERENCES artists(id),
    duration_ms INTEGER NOT NULL,
    acousticness REAL,
    danceability REAL,
    energy REAL,
    instrumentalness REAL,
    liveness REAL,
    loudness REAL,
    speechiness REAL,
    valence REAL,
    tempo REAL,
    key INTEGER,
    mode INTEGER,
    time_signature INTEGER
);

-- `id` is the MPD's `pid`; `num_tracks` is kept so that lengths need no scan.
CREATE TABLE playlists (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT,
    collaborative INTEGER NOT NULL CHECK (collaborative IN (0, 1)),
    modified_at INTEGER NOT NULL,
    num_followers INTEGER NOT NULL,
    num_edits INTEGER NOT NULL,
    num_tracks INTEGER NOT NULL
);

-- Clustered by (playlist, position): reading a playlist in order is one range scan.
CREATE TABLE playlist_track_memberships (
    playlist_id INTEGER NOT NULL REFERENCES playlists(id),
    pos INTEGER NOT NULL,
    track_id INTEGER NOT NULL REFERENCES tracks(id),
    PRIMARY KEY (playlist_id, pos)
) WITHOUT ROWID;

CREATE TABLE splits (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    fraction REAL NOT NULL
);

-- Every playlist is in exactly one split (the primary key), fixed at build time so that
-- no later step can move a test playlist into training.
CREATE TABLE split_memberships (
    playlist_id INTEGER PRIMARY KEY REFERENCES playlists(id),
    split_id INTEGER NOT NULL REFERENCES splits(id)
);

-- INDICES
CREATE UNIQUE INDEX artists_uri ON artists(uri);
CREATE UNIQUE INDEX albums_uri ON albums(uri);
CREATE UNIQUE INDEX tracks_uri ON tracks(uri);
CREATE INDEX split_memberships_split ON split_memberships(split_id, playlist_id);
