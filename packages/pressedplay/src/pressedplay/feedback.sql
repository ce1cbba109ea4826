-- Likes and dislikes of the playlists pressedplay made for images (pressedplay.feedback);
-- `pressedplay train --feedback` fine-tunes a model on them.
PRAGMA user_version = 1;

CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,          -- ISO 8601, UTC
    image BLOB NOT NULL,               -- the encoded image as given (validated by a full decode)
    image_name TEXT NOT NULL,          -- e.g. the path it was read from
    image_sha256 TEXT NOT NULL,
    model TEXT NOT NULL,               -- which model predicted, e.g. "vae runs/x/best.pt"
    predicted TEXT NOT NULL,           -- JSON {feature: value}, the eight features, original units
    verdict TEXT NOT NULL CHECK (verdict IN ('like', 'dislike')),
    playlist_ref TEXT,                 -- a generate output file or spotify:playlist:ID
    track_ids TEXT NOT NULL,           -- JSON list of the playlist's track ids (may be empty)
    playlist_features TEXT             -- JSON {feature: value}: the mean over the playlist's
                                       -- tracks found in a catalog, original units; NULL if none
);
