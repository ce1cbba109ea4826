-- A cover dataset (pressedplay.dataset): each cover image is stored once and paired with
-- the audio features of each of its tracks (one image, many targets).
PRAGMA user_version = 2;

CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);  -- source, seed, created_at

CREATE TABLE covers (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,   -- of the image bytes as stored
    origin TEXT NOT NULL,          -- e.g. spotify:playlist:ID, a relative file path, synth:N
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    image BLOB NOT NULL,           -- the original encoded bytes (JPEG/PNG/...)
    split TEXT CHECK (split IN ('train', 'valid', 'test'))  -- a seeded hash of sha256
);
-- Reading `split` from the table walks past the image blob; the index answers split
-- queries (info, feature statistics, the loader) without touching the images.
CREATE INDEX covers_split ON covers(split);

CREATE TABLE tracks (
    id TEXT PRIMARY KEY,
    name TEXT,
    artist TEXT,
    acousticness REAL NOT NULL,
    danceability REAL NOT NULL,
    energy REAL NOT NULL,
    instrumentalness REAL NOT NULL,
    liveness REAL NOT NULL,
    loudness REAL NOT NULL,
    speechiness REAL NOT NULL,
    valence REAL NOT NULL
) WITHOUT ROWID;

CREATE TABLE pairs (
    cover_id INTEGER NOT NULL REFERENCES covers(id),
    track_id TEXT NOT NULL REFERENCES tracks(id),
    PRIMARY KEY (cover_id, track_id)
) WITHOUT ROWID;

-- A cover's genre label (a folder's labels CSV with a genre column), for judging whether
-- predicted features tell genres apart (`evaluate`); such a cover needs no tracks.
CREATE TABLE cover_genres (
    cover_id INTEGER PRIMARY KEY REFERENCES covers(id),
    genre TEXT NOT NULL
) WITHOUT ROWID;

-- Why inputs were left out, counted (e.g. "track without features", "corrupt image").
CREATE TABLE skipped (reason TEXT PRIMARY KEY, count INTEGER NOT NULL) WITHOUT ROWID;

-- Per-feature mean and std over the train split's pairs, for standardisation.
CREATE TABLE feature_stats (
    feature TEXT PRIMARY KEY,
    mean REAL NOT NULL,
    std REAL NOT NULL
) WITHOUT ROWID;

-- Sources already collected (a playlist id, a file path): an interrupted build resumes
-- from the partial database and skips these.
CREATE TABLE done (source TEXT PRIMARY KEY) WITHOUT ROWID;
